import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { runPasswdCommand, passwdUsage } from '../../broker/auth/passwd-command.js';
import { loadPasswordFile } from '../../broker/auth/password-file.js';
import { hashPassword } from '../../broker/auth/password-hash.js';
import { tempDir } from '../helpers/tmp.js';
import { repoRoot } from '../helpers/paths.js';
import { run, startMosquitto } from './peers.js';

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `mqprobe passwd` in this process with stdin fed from a string (not a terminal). */
async function passwd(argv: string[], input = ''): Promise<Outcome> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await runPasswdCommand(argv, { stdout, stderr, stdin: Readable.from([Buffer.from(input)]), isTTY: false });
  return { code, stdout: out, stderr: err };
}

async function verify(file: string, user: string, password: string) {
  return (await loadPasswordFile(file)).verify(user, Buffer.from(password));
}

t.test('usage synopsis for the CLI help', async (t) => {
  t.match(passwdUsage, /-U passwordfile/);
  t.notMatch(passwdUsage, /\n/, 'one line');
});

t.test('-c -b creates a 0600 file that verifies; -b adds and updates; -D deletes', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  t.same(
    await passwd(['-c', '-b', file, 'alice', 'first']),
    { code: 0, stdout: '', stderr: '' },
    'silent success, as mosquitto_passwd 2.0',
  );
  t.equal(statSync(file).mode & 0o777, 0o600, 'new file is 0600');
  t.equal(await verify(file, 'alice', 'first'), 'ok');

  writeFileSync(file, `# managed by hand\n\n${readFileSync(file, 'utf8')}`);
  t.equal((await passwd(['-b', file, 'bob', 'b0b pass'])).code, 0);
  t.equal((await passwd(['-H', 'sha512', '-b', file, 'legacy', 'old'])).code, 0);
  t.equal((await passwd(['-I', '2000', '-b', file, 'slow', 'pw'])).code, 0);
  const before = readFileSync(file, 'utf8').split('\n');
  t.equal((await passwd(['-b', file, 'alice', 'second'])).code, 0, 'update alice');
  const after = readFileSync(file, 'utf8').split('\n');
  t.same(after.slice(0, 2), ['# managed by hand', ''], 'comment and blank line kept');
  t.not(after[2], before[2], 'alice has a new line');
  t.same(after.slice(3), before.slice(3), 'the other lines are untouched');
  t.match(after[4], /^legacy:\$6\$/, '-H sha512 writes $6$');
  t.match(after[5], /^slow:\$7\$2000\$/, '-I sets the iterations');
  t.equal(await verify(file, 'alice', 'second'), 'ok');
  t.equal(await verify(file, 'alice', 'first'), 'bad-password', 'the old password no longer works');
  t.equal(await verify(file, 'bob', 'b0b pass'), 'ok');
  t.equal(await verify(file, 'legacy', 'old'), 'ok');
  t.equal(await verify(file, 'slow', 'pw'), 'ok');

  t.equal((await passwd(['-D', file, 'bob'])).code, 0);
  t.same((await loadPasswordFile(file)).users(), ['alice', 'legacy', 'slow']);
  t.same(readdirSync(dir), ['passwd'], 'no temporary files left behind');
});

t.test('-c overwrites; an update collapses duplicate lines of one user', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  const hash = await hashPassword('x');
  writeFileSync(file, `a:${hash}\nb:${hash}\na:${hash}\n`);
  t.equal((await passwd(['-b', file, 'a', 'new'])).code, 0);
  t.same((await loadPasswordFile(file)).users(), ['a', 'b'], 'one line for a, at its first place');
  t.equal(await verify(file, 'a', 'new'), 'ok');
  t.equal((await passwd(['-c', '-b', file, 'only', 'one'])).code, 0);
  t.same((await loadPasswordFile(file)).users(), ['only']);
});

t.test('-U hashes a plain-text file in place and leaves hashed lines alone', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  const hashed = `kept:${await hashPassword('kept-pw')}`;
  writeFileSync(file, `# plain text\nalice:alice-plain\n  bob  :  b0b with spaces  \n${hashed}\n`);
  t.same(await passwd(['-U', file]), { code: 0, stdout: '', stderr: '' });
  const lines = readFileSync(file, 'utf8').split('\n');
  t.equal(lines[0], '# plain text');
  t.match(lines[1], /^alice:\$7\$101\$/);
  t.equal(lines[3], hashed, 'an already hashed line is not hashed again');
  t.equal(await verify(file, 'alice', 'alice-plain'), 'ok');
  t.equal(await verify(file, 'bob', 'b0b with spaces'), 'ok', 'blanks around the password are trimmed, as Mosquitto does');
  t.equal(await verify(file, 'kept', 'kept-pw'), 'ok');
  const once = readFileSync(file, 'utf8');
  t.equal((await passwd(['-U', file])).code, 0);
  t.equal(readFileSync(file, 'utf8'), once, 'running -U twice changes nothing');
});

t.test('interactive mode reads two lines from a non-terminal stdin', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  t.same(await passwd(['-c', file, 'carol'], 'c4rol pw\nc4rol pw\n'), { code: 0, stdout: 'Password: \nReenter password: \n', stderr: '' });
  t.equal(await verify(file, 'carol', 'c4rol pw'), 'ok');
  t.equal((await passwd([file, 'dave'], 'd\r\nd\r\n')).code, 0, 'CRLF input');
  t.equal(await verify(file, 'dave', 'd'), 'ok');
});

t.test('a terminal gets prompts without echo (real pty through script(1) and the mqprobe CLI)', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  const secret = 's3cret-on-a-tty';
  const cli = `${process.execPath} --import tsx ${join(repoRoot, 'app', 'cli.ts')} passwd -c ${file} ttyuser`;
  const child = spawn('script', ['-qfec', cli, '/dev/null'], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let transcript = '';
  let answered = 0;
  child.stdout.on('data', (d) => {
    transcript += d;
    const prompts = (transcript.match(/assword: /g) ?? []).length;
    if (prompts > answered) {
      answered = prompts;
      child.stdin.write(`${secret}\r`);
    }
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.equal(code, 0, transcript);
  t.match(transcript, /Password: [\s\S]*Reenter password: /);
  t.notOk(transcript.includes(secret), 'the password is never echoed');
  t.equal(await verify(file, 'ttyuser', secret), 'ok');
});

t.test('messages and exit codes match the real mosquitto_passwd', async (t) => {
  // the same command in two folders with the same content; paths are compared as DIR
  const setup = async (dir: string) => {
    writeFileSync(join(dir, 'existing'), `alice:${await hashPassword('a')}\n`);
  };
  const cases: [string, string[], string?][] = [
    ['no arguments', []],
    ['-c with -D', ['-c', '-D', 'DIR/f', 'u']],
    ['-c with -U', ['-c', '-U', 'DIR/f']],
    ['-D with -U', ['-D', '-U', 'DIR/f']],
    ['-b with -D', ['-b', '-D', 'DIR/f', 'u']],
    ['unknown hash', ['-H', 'md5', 'DIR/f', 'u']],
    ['-H without value', ['-H']],
    ['-I 0', ['-I', '0', 'DIR/f', 'u']],
    ['-I not a number', ['-I', 'many', 'DIR/f', 'u']],
    ['-I without value', ['-I']],
    ['-c -b without password', ['-c', '-b', 'DIR/f', 'u']],
    ['-c without username', ['-c', 'DIR/f']],
    ['-D without username', ['-D', 'DIR/f']],
    ['-U without file', ['-U']],
    ['-U with two files', ['-U', 'DIR/f', 'x']],
    ['only a file', ['DIR/f']],
    ['-b without password', ['-b', 'DIR/f', 'u']],
    ['username with a colon', ['-b', 'DIR/existing', 'a:b', 'p']],
    ['username with a tab', ['-b', 'DIR/existing', 'a\tb', 'p']],
    ['missing file', ['-b', 'DIR/missing', 'u', 'p']],
    ['missing folder with -c', ['-c', '-b', 'DIR/nofolder/f', 'u', 'p']],
    ['password too long', ['-b', 'DIR/existing', 'u', 'x'.repeat(70_000)]],
    ['delete an unknown user', ['-D', 'DIR/existing', 'nobody']],
    ['passwords differ', ['DIR/existing', 'u'], 'one\ntwo\n'],
    ['empty password', ['DIR/existing', 'u'], '\n'],
    ['no input', ['DIR/existing', 'u'], ''],
    ['interactive ok', ['DIR/existing', 'u'], 'same\nsame\n'],
  ];
  const ours = tempDir();
  const theirs = tempDir();
  for (const [name, argv, input] of cases) {
    await setup(ours);
    await setup(theirs);
    const mine = await passwd(
      argv.map((a) => a.replace('DIR', ours)),
      input,
    );
    const real = await run(
      t,
      'mosquitto_passwd',
      argv.map((a) => a.replace('DIR', theirs)),
      input,
    );
    const norm = (s: string, dir: string) => s.split(dir).join('DIR');
    t.equal(mine.code, real.code, `${name}: exit code ${real.code}`);
    t.equal(norm(mine.stderr, ours), norm(real.stderr, theirs), `${name}: stderr ${JSON.stringify(real.stderr)}`);
    if (/^Usage:/m.test(real.stdout)) t.match(mine.stdout, /^Usage: mqprobe passwd /m, `${name}: usage`);
    else t.equal(mine.stdout, real.stdout, `${name}: stdout ${JSON.stringify(real.stdout)}`);
  }
});

t.test('a corrupt line stops the edit and leaves the file as it was', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  const content = `alice:${await hashPassword('a')}\nbroken-line\ncarol:${await hashPassword('c')}\n`;
  writeFileSync(file, content);
  t.same(await passwd(['-b', file, 'u', 'p']), { code: 1, stdout: '', stderr: 'Error: Corrupt password file at line 2.\n' });
  t.equal(readFileSync(file, 'utf8'), content, 'untouched');
  // mosquitto_passwd 2.0.11 prints the same error, exits 0 and drops every line after the corrupt one
  const real = await run(t, 'mosquitto_passwd', ['-b', file, 'u', 'p']);
  t.equal(real.stderr, 'Error: Corrupt password file at line 2.\n');
  t.notOk(readFileSync(file, 'utf8').includes('carol:'), 'the real tool lost carol: the behaviour mqprobe does not copy');
});

t.test('mqprobe limits beyond mosquitto_passwd', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  t.match(await passwd(['-I', '1000001', '-c', '-b', file, 'u', 'p']), {
    code: 1,
    stderr: 'Error: Number of iterations must be at most 1000000.\n',
  });
  t.match(
    await passwd(['-c', '-b', file, ' u', 'p']),
    { code: 1, stderr: /must not be empty or start or end with blanks/ },
    'the broker would trim the name',
  );
  t.match(await passwd(['-c', '-b', file, '#u', 'p']), { code: 1, stderr: /must not start with '#'/ }, 'the broker would read a comment');
  t.match(await passwd(['--help']), { code: 0, stdout: /^mqprobe passwd is a tool/ });
  writeFileSync(file, Buffer.from([0x61, 0x3a, 0xff, 0xfe, 0x0a]));
  t.match(await passwd(['-b', file, 'u', 'p']), { code: 1, stderr: /:1: line is not valid UTF-8/ });
  t.same(readdirSync(dir), ['passwd'], 'nothing written after a failure');
});

t.test('-H argon2id writes the line Mosquitto 2.1 writes; -U keeps hashes the broker would refuse', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  t.same(await passwd(['-H', 'argon2id', '-c', '-b', file, 'alice', 'a pw']), { code: 0, stdout: '', stderr: '' });
  const line = readFileSync(file, 'utf8');
  t.match(
    line,
    /^alice:\$argon2id\$v=19\$m=47104,t=1,p=1\$[A-Za-z0-9+/]{86}\$[A-Za-z0-9+/]{86}\n$/,
    "m=47104 KiB, t=1, p=1, 64-byte salt and hash, as libcommon's pw__create_argon2id",
  );
  t.equal((await passwd(['-H', 'argon2id', '-b', file, 'bob', 'b pw'])).code, 0);
  t.equal(await verify(file, 'alice', 'a pw'), 'ok');
  t.equal(await verify(file, 'bob', 'b pw'), 'ok');
  t.equal(await verify(file, 'bob', 'a pw'), 'bad-password');
  t.same(await passwd(['-H', 'argon2id', '-I', '5', '-b', file, 'carol', 'c']), {
    code: 1,
    stdout: '',
    stderr: 'Error: -I applies to -H sha512-pbkdf2 only.\n',
  });
  t.same(await passwd(['-H', 'argon2id', '-b', file, 'carol', '']), {
    code: 1,
    stdout: '',
    stderr: 'Error: argon2id cannot hash an empty password (hash-wasm refuses it)\n',
  });

  const broken = ['$7$0$AAAA$BBBB', '$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', '$6$short$x'];
  writeFileSync(file, `${broken.map((b, i) => `u${i}:${b}`).join('\n')}\nplain:secret\n`);
  t.equal((await passwd(['-H', 'argon2id', '-U', file])).code, 0);
  const after = readFileSync(file, 'utf8').split('\n');
  t.same(
    after.slice(0, 3),
    broken.map((b, i) => `u${i}:${b}`),
    'hash-shaped fields are not hashed again',
  );
  t.match(after[3], /^plain:\$argon2id\$/, 'the plain-text one is');
  t.equal(await verify(file, 'plain', 'secret'), 'ok');
});

t.test('an edit keeps mode and owner, and writes through a symlink', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  t.equal((await passwd(['-c', '-b', file, 'a', 'p'])).code, 0);
  chmodSync(file, 0o640);
  const mosquittoUser = await run(t, 'id', ['-u', 'mosquitto']);
  const uid = Number(mosquittoUser.stdout.trim());
  const owned = process.getuid?.() === 0 && mosquittoUser.code === 0;
  if (owned) chownSync(file, uid, uid === 0 ? 0 : statSync(file).gid);
  t.equal((await passwd(['-b', file, 'b', 'p'])).code, 0);
  t.equal(statSync(file).mode & 0o777, 0o640, 'mode kept');
  if (owned) t.equal(statSync(file).uid, uid, 'owner kept (the broker user can still read it)');
  t.equal((await passwd(['-c', '-b', file, 'c', 'p'])).code, 0);
  t.equal(statSync(file).mode & 0o777, 0o640, '-c over an existing file keeps its mode too');

  const real = join(dir, 'real');
  mkdirSync(real);
  const target = join(real, 'passwd');
  t.equal((await passwd(['-c', '-b', target, 'a', 'p'])).code, 0);
  const link = join(dir, 'link');
  symlinkSync(target, link);
  t.equal((await passwd(['-b', link, 'b', 'q'])).code, 0);
  t.ok(lstatSync(link).isSymbolicLink(), 'the link is still a link');
  t.equal(await verify(target, 'b', 'q'), 'ok', 'the target was updated');
});

t.test('interop: real mosquitto_passwd edits our file, and real Mosquitto accepts our users', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  t.equal((await passwd(['-c', '-b', file, 'ours-pbkdf2', 'pw one'])).code, 0);
  t.equal((await passwd(['-H', 'sha512', '-b', file, 'ours-sha512', 'pw:two'])).code, 0);
  t.equal((await passwd(['-I', '5000', '-b', file, 'ours-5000', 'pw/three'])).code, 0);
  const added = await run(t, 'mosquitto_passwd', ['-b', file, 'theirs', 'their pw']);
  t.equal(added.code, 0, `mosquitto_passwd reads and extends our file ${added.stderr}`);
  t.equal(await verify(file, 'ours-pbkdf2', 'pw one'), 'ok', 'our lines survive their rewrite');
  t.equal(await verify(file, 'theirs', 'their pw'), 'ok');

  const broker = await startMosquitto(t, dir, `allow_anonymous false\npassword_file ${file}\n`, [file]);
  const pub = (user: string, password: string) =>
    run(t, 'mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-u', user, '-P', password, '-t', 'interop', '-m', 'x']);
  for (const [user, password] of [
    ['ours-pbkdf2', 'pw one'],
    ['ours-sha512', 'pw:two'],
    ['ours-5000', 'pw/three'],
    ['theirs', 'their pw'],
  ]) {
    const r = await pub(user, password);
    t.equal(r.code, 0, `real mosquitto accepts ${user} ${r.stderr}`);
  }
  const wrong = await pub('ours-pbkdf2', 'pw two');
  t.not(wrong.code, 0, 'wrong password refused');
  t.match(wrong.stderr, /not authori[sz]ed/i);
  const unknown = await pub('nobody', 'pw one');
  t.not(unknown.code, 0, 'unknown user refused');
});
