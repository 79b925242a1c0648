// An independent AMQP consumer (Node's amqplib, not pika): prints every message of a queue as JSON,
// with each header value tagged by the type amqplib decoded, so a test can compare what a wfbus replay
// produced with what was dead-lettered, as another language's client sees them.
//   node read.js URL QUEUE peek|take
//   peek: read all, acknowledge nothing (closing the channel puts them back); take: remove them.
'use strict';
const amqp = require('amqplib');

function tagged(value) {
  if (value === null || value === undefined) return { null: null };
  if (Buffer.isBuffer(value)) return { bytes: value.toString('base64') };
  if (Array.isArray(value)) return { array: value.map(tagged) };
  if (typeof value === 'object') {
    if (value['!'] === 'decimal') return { decimal: value.value };
    if (value['!'] === 'timestamp') return { timestamp: value.value };
    const table = {};
    for (const key of Object.keys(value)) table[key] = tagged(value[key]);
    return { table };
  }
  return { [typeof value]: value };
}

async function main() {
  const [url, queue, mode] = process.argv.slice(2);
  if (!url || !queue || !['peek', 'take'].includes(mode)) {
    console.error('usage: node read.js URL QUEUE peek|take');
    process.exit(2);
  }
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  const out = [];
  for (;;) {
    const message = await channel.get(queue, { noAck: mode === 'take' });
    if (message === false) break;
    const { headers, ...properties } = message.properties;
    const plain = {};
    for (const [key, value] of Object.entries(properties)) if (value !== undefined) plain[key] = value;
    out.push({
      body: message.content.toString('base64'),
      routingKey: message.fields.routingKey,
      properties: plain,
      headers: headers === undefined ? null : tagged(headers).table,
    });
  }
  await channel.close();
  await connection.close();
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => {
  console.error(String(error && error.stack || error));
  process.exit(1);
});
