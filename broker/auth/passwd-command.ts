import { randomBytes } from 'node:crypto';
import { type Stats } from 'node:fs';
import { open, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { getSystemErrorMap } from 'node:util';
import { MAX_FIELD_BYTES, PASSWORD_FILE_LIMITS, isPasswordFileComment, splitPasswordLine } from './password-file.js';
import { DEFAULT_ITERATIONS, MAX_ITERATIONS, hashPassword, type HashType } from './password-hash.js';
import { readTextLines } from './text-file.js';

export interface PasswdIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  /** stdin is a terminal: prompt without echo. Otherwise two lines are read from stdin. */
  isTTY: boolean;
}

/** The argument synopsis (for `mqprobe --help`). */
export const passwdUsage =
  '[-H argon2id | -H sha512-pbkdf2 | -H sha512] [-I iterations] [-c | -D] passwordfile username | [-c] -b passwordfile username password | -U passwordfile';

const HELP = `mqprobe passwd is a tool for managing password files for mqprobe and mosquitto.

Usage: mqprobe passwd [-H argon2id | -H sha512-pbkdf2 | -H sha512] [-I iterations] [-c | -D] passwordfile username
       mqprobe passwd [-H argon2id | -H sha512-pbkdf2 | -H sha512] [-I iterations] [-c] -b passwordfile username password
       mqprobe passwd [-H argon2id | -H sha512-pbkdf2 | -H sha512] [-I iterations] -U passwordfile
 -b : run in batch mode to allow passing passwords on the command line.
 -c : create a new password file. This will overwrite existing files.
 -D : delete the username rather than adding/updating its password.
 -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which Mosquitto 2.0 and 2.1
      both read. argon2id is what Mosquitto 2.1 writes by default (2.0 cannot read it).
      Mosquitto 1.6 and earlier defaulted to sha512.
 -I : PBKDF2 iterations for sha512-pbkdf2 (default ${DEFAULT_ITERATIONS} as Mosquitto 2.0; 2.1 writes 1000;
      at most ${MAX_ITERATIONS}).
 -U : update a plain text password file to use hashed passwords.

The file format is mosquitto_passwd's: a file written here works with mosquitto and back.
`;

interface Options {
  type: HashType;
  iterations: number;
  batch: boolean;
  create: boolean;
  remove: boolean;
  update: boolean;
}

/** Thrown for an expected failure: the message goes to stderr as is, the code is the exit code. */
class Failure extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}

/** strerror-like text ("No such file or directory") for a Node fs error. */
function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = e.errno !== undefined ? getSystemErrorMap().get(e.errno)?.[1] : undefined;
  return text ? text[0].toUpperCase() + text.slice(1) : (e.code ?? e.message);
}

/** Parses flags as mosquitto_passwd does: flags first, the first other word starts the operands. */
function parseArgs(argv: string[]): { opts: Options; operands: string[] } {
  const opts: Options = {
    type: 'sha512-pbkdf2',
    iterations: DEFAULT_ITERATIONS,
    batch: false,
    create: false,
    remove: false,
    update: false,
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-H' || a === '-I') {
      const value = argv[i + 1];
      if (value === undefined) throw new Failure(`Error: ${a} argument given but not enough other arguments.`);
      i++;
      if (a === '-H') {
        if (value !== 'sha512' && value !== 'sha512-pbkdf2' && value !== 'argon2id')
          throw new Failure(`Error: Unknown hash type '${value}'`);
        opts.type = value;
      } else {
        const n = /^\d+$/.test(value) ? Number(value) : 0;
        if (n < 1) throw new Failure('Error: Number of iterations must be > 0.');
        if (n > MAX_ITERATIONS) throw new Failure(`Error: Number of iterations must be at most ${MAX_ITERATIONS}.`);
        opts.iterations = n;
      }
    } else if (a === '-b') opts.batch = true;
    else if (a === '-c') opts.create = true;
    else if (a === '-D') opts.remove = true;
    else if (a === '-U') opts.update = true;
    else break;
  }
  const conflict = ([x, y, a, b]: [boolean, boolean, string, string]) => {
    if (x && y) throw new Failure(`Error: ${a} and ${b} cannot be used together.`);
  };
  conflict([opts.create, opts.remove, '-c', '-D']);
  conflict([opts.create, opts.update, '-c', '-U']);
  conflict([opts.remove, opts.update, '-D', '-U']);
  conflict([opts.remove, opts.batch, '-b', '-D']);
  if (argv.slice(0, i).includes('-I') && opts.type !== 'sha512-pbkdf2') throw new Failure('Error: -I applies to -H sha512-pbkdf2 only.');
  return { opts, operands: argv.slice(i) };
}

function checkUsername(user: string): void {
  if (Buffer.byteLength(user) > MAX_FIELD_BYTES) throw new Failure('Error: Username must be less than 65536 characters long.');
  if (/[\p{Cc}]/u.test(user)) throw new Failure('Error: Username must not contain control characters.');
  if (user.includes(':')) throw new Failure("Error: Username must not contain the ':' character.");
  // the broker trims blanks and skips '#' lines: such a user could never log in
  if (user.trim() !== user || user === '') throw new Failure('Error: Username must not be empty or start or end with blanks.');
  if (user.startsWith('#')) throw new Failure("Error: Username must not start with '#'.");
}

function checkPassword(password: string): void {
  if (Buffer.byteLength(password) > MAX_FIELD_BYTES) throw new Failure('Error: Password must be less than 65536 characters long.');
}

/** Asks twice, as mosquitto_passwd does: without echo on a terminal, else two lines of stdin. */
async function promptPassword(io: PasswdIo): Promise<string> {
  const muted = new Writable({ write: (_chunk, _enc, done) => done() });
  const rl = createInterface({ input: io.stdin, output: muted, terminal: io.isTTY });
  const lines = rl[Symbol.asyncIterator]();
  let interrupted = false;
  rl.on('SIGINT', () => {
    interrupted = true;
    rl.close();
  });
  const ask = async (prompt: string): Promise<string> => {
    io.stdout.write(prompt);
    const next = await lines.next();
    if (interrupted) {
      io.stdout.write('\n');
      throw new Failure('', 130);
    }
    if (next.done || next.value === '') throw new Failure('Error: Empty password.');
    io.stdout.write('\n');
    return next.value;
  };
  try {
    const first = await ask('Password: ');
    const second = await ask('Reenter password: ');
    if (first !== second) throw new Failure('Error: Passwords do not match.', 2);
    checkPassword(first);
    return first;
  } finally {
    rl.close();
  }
}

/**
 * Replaces the file in one step (temp file in the same folder, fsync, rename), so that a
 * broker reloading it never sees half a file. An existing file keeps its mode and owner
 * (a root-run edit must not make the file unreadable to the broker's own user); a new file
 * is created 0600.
 */
async function writeAtomically(path: string, content: string, previous: Stats | undefined): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(content);
    if (previous) {
      await fh.chmod(previous.mode & 0o7777);
      await fh.chown(previous.uid, previous.gid).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPERM') throw err;
      });
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Where to write: through a symlink to its target, as mosquitto_passwd's realpath() does. */
async function resolvePath(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return path;
    throw new Failure(`Error reading password file: ${reason(err)}`);
  }
}

async function statIfExists(path: string): Promise<Stats | undefined> {
  return stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/** A line of a password file being edited: comments and blank lines are kept as they are. */
type Entry = { text: string } | { user: string; field: string };

async function readEntries(path: string): Promise<Entry[]> {
  // mosquitto_passwd opens the file read-write first, so a read-only file fails before any prompt
  const fh = await open(path, 'r+').catch((err) => {
    throw new Failure(`Error: Unable to open password file ${path}. ${reason(err)}.`);
  });
  await fh.close();
  const lines = await readTextLines(path, PASSWORD_FILE_LIMITS).catch((err: Error) => {
    throw new Failure(`Error: ${err.message}.`);
  });
  return lines.map(({ line, text }) => {
    if (isPasswordFileComment(text)) return { text };
    const parts = splitPasswordLine(text);
    if (!parts || parts.user === '' || parts.field === '') throw new Failure(`Error: Corrupt password file at line ${line}.`);
    return parts;
  });
}

function render(entries: Entry[]): string {
  return entries.map((e) => ('text' in e ? e.text : `${e.user}:${e.field}`) + '\n').join('');
}

async function run(argv: string[], io: PasswdIo): Promise<number> {
  if (argv.length === 0 || argv[0] === '-h' || argv[0] === '--help') {
    io.stdout.write(HELP);
    return argv.length === 0 ? 1 : 0;
  }
  const { opts, operands } = parseArgs(argv);
  const hash = (password: string) => hashPassword(password, opts.iterations, opts.type);
  if (opts.create && operands.length < (opts.batch ? 3 : 2)) {
    throw new Failure(`Error: -c argument given but password file${opts.batch ? ', username, or password' : ' or username'} missing.`);
  } else if (opts.remove && operands.length < 2) {
    throw new Failure('Error: -D argument given but password file or username missing.');
  } else if (opts.update && operands.length !== 1) {
    throw new Failure('Error: -U argument given but password file missing.');
  } else if (!opts.create && !opts.remove && !opts.update && operands.length !== (opts.batch ? 3 : 2)) {
    io.stdout.write(HELP);
    return 1;
  }
  const [file, user, password] = operands as [string, string | undefined, string | undefined];
  if (user !== undefined && !opts.update) checkUsername(user);
  if (opts.batch && password !== undefined) checkPassword(password);
  const path = await resolvePath(file);

  if (opts.create) {
    const secret = opts.batch ? password! : await promptPassword(io);
    const previous = await statIfExists(path);
    await writeAtomically(path, `${user}:${await hash(secret)}\n`, previous).catch((err) => {
      throw new Failure(`Error: Unable to open file ${path} for writing. ${reason(err)}.`);
    });
    return 0;
  }

  let entries = await readEntries(path);
  const isUser = (e: Entry): e is { user: string; field: string } => 'user' in e && e.user === user;
  if (opts.remove) {
    if (!entries.some(isUser)) throw new Failure(`Warning: User ${user} not found in password file.`);
    entries = entries.filter((e) => !isUser(e));
  } else if (opts.update) {
    // lines that already hold a hash stay as they are, even one the broker would refuse: hashing a
    // hash would turn it into a password nobody knows
    for (const e of entries) if ('user' in e && !/^\$(6|7|argon2\w*)\$/.test(e.field)) e.field = await hash(e.field);
  } else {
    const field = await hash(password ?? (await promptPassword(io)));
    const first = entries.findIndex(isUser);
    // one line per user: later duplicates (which the broker refuses) are dropped
    if (first < 0) entries.push({ user: user!, field });
    else entries = entries.filter((e, i) => i === first || !isUser(e)).map((e) => (isUser(e) ? { user: e.user, field } : e));
  }
  const content = render(entries);
  const previous = await stat(path);
  await writeAtomically(path, content, previous).catch((err) => {
    throw new Failure(`Error occurred updating password file ${path}. ${reason(err)}.`);
  });
  return 0;
}

/**
 * `mqprobe passwd`: mosquitto_passwd's flags, messages and exit codes (0 done, 1 error,
 * 2 passwords do not match; 130 when interrupted at a prompt).
 */
export async function runPasswdCommand(argv: string[], io: PasswdIo): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof Failure) {
      if (err.message) io.stderr.write(`${err.message}\n`);
      return err.code;
    }
    io.stderr.write(`Error: ${(err as Error).message}\n`);
    return 1;
  }
}
