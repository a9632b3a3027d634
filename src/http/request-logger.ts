import type { Bindings, ChildLoggerOptions, Level, LevelWithSilent, Logger } from 'pino';
import type { FastifyBaseLogger } from 'fastify';

type Log = (...args: unknown[]) => void;

/**
 * A request's logger (`req.log`) that becomes pino's child logger, with the request id bound,
 * only when something is logged at a level that is enabled. Fastify makes a child per request
 * (binding and serializing the id costs a few per cent of a manifest read); at `warn`, where
 * nothing but failures is written, a request that fails nothing never needs one.
 */
class RequestLogger implements FastifyBaseLogger {
  private real: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
    private readonly opts: ChildLoggerOptions,
  ) {}

  private logger(): Logger {
    return (this.real ??= this.parent.child(this.bindings, this.opts));
  }

  private write(level: Level, args: unknown[]): void {
    if (!(this.real ?? this.parent).isLevelEnabled(level)) return;
    (this.logger()[level] as Log)(...args);
  }

  get level(): LevelWithSilent | string {
    return (this.real ?? this.parent).level;
  }

  set level(level: LevelWithSilent | string) {
    this.logger().level = level;
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger().child(bindings, options);
  }
}

/** Fastify's `childLoggerFactory` over a pino logger: see RequestLogger. */
export function requestLoggerFactory(parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  // A route's own level is applied to the child by fastify: then the child is needed at once.
  if (opts.level !== undefined) return parent.child(bindings, opts);
  return new RequestLogger(parent as Logger, bindings, opts);
}
