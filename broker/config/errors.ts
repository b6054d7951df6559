/** Where a config entry came from: every error and warning names it. */
export interface SourcePos {
  file: string;
  line: number;
}

/** A config problem that stops the broker: names file, line and key, and what was expected. */
export class ConfigError extends Error {
  constructor(
    readonly pos: SourcePos | undefined,
    readonly key: string | undefined,
    readonly detail: string,
  ) {
    super(`${pos ? `${pos.file}:${pos.line}: ` : ''}${key ? `${key}: ` : ''}${detail}`);
    this.name = 'ConfigError';
  }
}

/** A config problem worth telling about that does not stop the broker. */
export interface ConfigWarning extends SourcePos {
  key: string;
  message: string;
}
