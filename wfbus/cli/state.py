"""What every command shares: the global options, the config (loaded once, lazily) and the output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from .render import Output, OutputMode

if TYPE_CHECKING:
    from ..config import Config


@dataclass
class State:
    config_path: str | None = None
    output_mode: OutputMode = "text"
    verbose: bool = False
    no_color: bool = False
    stdin: IO[bytes] | None = None  # injectable for tests; None means the process's stdin
    _config: Config | None = field(default=None, repr=False)
    _output: Output | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from ..config import load

            self._config = load(self.config_path)
            for warning in self._config.warnings:
                self.out.warn(warning)
            self._config.on_warning = self.out.warn
        return self._config

    @property
    def out(self) -> Output:
        if self._output is None:
            self._output = Output(self.output_mode, no_color=self.no_color)
        return self._output
