// An independent SQS consumer: receives (and deletes) every message of a queue with the AWS SDK for
// JavaScript and prints one JSON line per message: body, group, and every message attribute with its
// DataType (binary values base64). Usage: node consume.mjs ENDPOINT QUEUE_URL EXPECTED
import { SQSClient, ReceiveMessageCommand, DeleteMessageBatchCommand } from "@aws-sdk/client-sqs";

const [endpoint, queueUrl, expected] = process.argv.slice(2);
const client = new SQSClient({ endpoint, region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } });
let seen = 0;
let empty = 0;
while (empty < (seen >= Number(expected) ? 1 : 8)) {
  const { Messages = [] } = await client.send(new ReceiveMessageCommand({
    QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
    MessageAttributeNames: ["All"], MessageSystemAttributeNames: ["All"],
  }));
  if (Messages.length === 0) { empty += 1; continue; }
  empty = 0;
  for (const m of Messages) {
    const attributes = {};
    for (const [name, value] of Object.entries(m.MessageAttributes ?? {})) {
      attributes[name] = value.BinaryValue !== undefined
        ? { DataType: value.DataType, BinaryValue: Buffer.from(value.BinaryValue).toString("base64") }
        : { DataType: value.DataType, StringValue: value.StringValue };
    }
    process.stdout.write(JSON.stringify({ body: m.Body, group: m.Attributes?.MessageGroupId ?? null, attributes }) + "\n");
    seen += 1;
  }
  await client.send(new DeleteMessageBatchCommand({
    QueueUrl: queueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
  }));
}
