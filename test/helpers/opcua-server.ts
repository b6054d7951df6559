/**
 * A real OPC-UA server for tests: node-opcua's OPCUAServer in a child process (so that a restart is
 * a real crash: SIGKILL, sockets reset), with a small address space given by the test and a line
 * protocol on stdin to change it while it runs. This file is both the helper (imported by tests) and
 * the child's program (run with the spec as its argument).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, tempDir, type Teardown } from './broker.js';
import { killAndWait } from './mosquitto.js';

export interface OpcuaVariableSpec {
  /** Browse path below Objects: `Plant/Line1/Temperature` (the first level a Folder, further ones Objects). */
  path: string;
  /** Browse name of the variable when it cannot stand in `path` (contains a `/`); default: the last level of `path`. */
  browseName?: string;
  /** String identifier in the server's own namespace: node id `ns=1;s=<id>`. */
  id: string;
  dataType: 'Double' | 'Int32' | 'Int64' | 'UInt64' | 'Boolean' | 'String' | 'DateTime' | 'ByteString' | 'Float';
  value: unknown;
  /** For percent deadbands. */
  euRange?: { low: number; high: number };
}

export interface OpcuaServerSpec {
  variables: OpcuaVariableSpec[];
  /** Users for user-name identities; anonymous sessions are refused when there are users. */
  users?: { name: string; password: string }[];
  /** Also offer Basic256Sha256 and Aes256_Sha256_RsaPss with Sign and SignAndEncrypt (default: None only). */
  secure?: boolean;
}

export interface OpcuaServerPeer {
  port: number;
  /** opc.tcp://127.0.0.1:<port>/UA/mqprobe */
  endpoint: string;
  pkiDir: string;
  /** The server's own certificate (PEM), for opcua_server_certificate_file. */
  certificateFile: string;
  /** Everything the child printed on stderr (node-opcua's logs). */
  output(): string;
  set(id: string, value: unknown): Promise<void>;
  /** Adds a variable (as a model change, which raises a GeneralModelChangeEvent). */
  add(variable: OpcuaVariableSpec): Promise<void>;
  remove(id: string): Promise<void>;
  /** Kills it (SIGKILL) and resolves once it is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same port and PKI folder, with the variables of the spec (after stop). */
  start(): Promise<void>;
}

const RESOURCE_PATH = '/UA/mqprobe';

/** Starts the server on a free loopback port with a PKI folder of its own; killed in teardown. */
export async function startOpcuaServer(t: Teardown, spec: OpcuaServerSpec): Promise<OpcuaServerPeer> {
  const port = await freePort();
  const pkiDir = tempDir('mqprobe-opcua-server-');
  let child: ChildProcess | undefined;
  let out = '';
  let certificateFile = '';
  let nextId = 1;
  const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

  const send = (cmd: Record<string, unknown>): Promise<void> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      child!.stdin!.write(`${JSON.stringify({ ...cmd, seq: id })}\n`);
    });

  const peer: OpcuaServerPeer = {
    port,
    endpoint: `opc.tcp://127.0.0.1:${port}${RESOURCE_PATH}`,
    pkiDir,
    get certificateFile() {
      return certificateFile;
    },
    output: () => out,
    set: (id, value) => send({ op: 'set', id, value }),
    add: (variable) => send({ op: 'add', variable }),
    remove: (id) => send({ op: 'remove', id }),
    async start() {
      const c = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), JSON.stringify({ ...spec, port, pkiDir })], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      child = c;
      c.stderr!.on('data', (d) => (out += d));
      const ready = new Promise<void>((resolve, reject) => {
        c.once('exit', (code) => reject(new Error(`OPC-UA server exited (${code}) before it was ready:\n${out.slice(-4000)}`)));
        createInterface({ input: c.stdout! }).on('line', (line) => {
          if (!line.startsWith('@@')) return;
          const msg = JSON.parse(line.slice(2)) as { ready?: boolean; certificateFile?: string; seq?: number; error?: string };
          if (msg.ready) {
            certificateFile = msg.certificateFile!;
            resolve();
          } else if (msg.seq !== undefined) {
            const w = waiting.get(msg.seq);
            waiting.delete(msg.seq);
            if (msg.error) w?.reject(new Error(msg.error));
            else w?.resolve();
          }
        });
      });
      await ready;
    },
    stop: () => killAndWait(child),
  };
  t.teardown(() => peer.stop());
  await peer.start();
  return peer;
}

/** The child: runs the server and answers commands on stdin with `@@{...}` lines on stdout. */
async function serve(spec: OpcuaServerSpec & { port: number; pkiDir: string }): Promise<void> {
  const { OPCUAServer } = await import('node-opcua-server');
  const { OPCUACertificateManager } = await import('node-opcua-certificate-manager');
  const ua = await import('node-opcua-client');
  const toStderr = (_ctx: unknown, ...args: unknown[]) => process.stderr.write(`${args.map(String).join(' ')}\n`);
  ua.setDebugLogger(toStderr);
  ua.setWarningLogger(toStderr);
  ua.setErrorLogger(toStderr);
  const reply = (msg: Record<string, unknown>) => process.stdout.write(`@@${JSON.stringify(msg)}\n`);

  const serverCertificateManager = new OPCUACertificateManager({
    rootFolder: spec.pkiDir,
    automaticallyAcceptUnknownCertificate: true,
    disableFileWatchers: true,
  });
  const users = spec.users ?? [];
  const server = new OPCUAServer({
    port: spec.port,
    hostname: '127.0.0.1',
    resourcePath: RESOURCE_PATH,
    serverCertificateManager,
    securityPolicies: spec.secure
      ? [ua.SecurityPolicy.None, ua.SecurityPolicy.Basic256Sha256, ua.SecurityPolicy.Aes256_Sha256_RsaPss]
      : [ua.SecurityPolicy.None],
    securityModes: spec.secure
      ? [ua.MessageSecurityMode.None, ua.MessageSecurityMode.Sign, ua.MessageSecurityMode.SignAndEncrypt]
      : [ua.MessageSecurityMode.None],
    allowAnonymous: users.length === 0,
    userManager: { isValidUser: (name: string, password: string) => users.some((u) => u.name === name && u.password === password) },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace!;
  const ns = addressSpace.getOwnNamespace();
  type Node = ReturnType<typeof ns.addObject>;
  type Variable = ReturnType<typeof ns.addVariable>;
  const variables = new Map<string, { v: Variable; dataType: string }>();
  const containers = new Map<string, Node>();

  const container = (levels: string[]): Node => {
    const key = levels.join('/');
    const known = containers.get(key);
    if (known) return known;
    // a NodeVersion makes the server raise model change events when children come and go
    const node =
      levels.length === 1
        ? ns.addObject({
            organizedBy: addressSpace.rootFolder.objects,
            typeDefinition: 'FolderType',
            browseName: levels[0],
            nodeVersion: '1',
          })
        : ns.addObject({ organizedBy: container(levels.slice(0, -1)), browseName: levels[levels.length - 1], nodeVersion: '1' });
    containers.set(key, node);
    return node;
  };
  const variant = (dataType: string, value: unknown) => {
    const dt = ua.DataType[dataType as keyof typeof ua.DataType] as number;
    // JSON carries no Date, Buffer or NaN: the spec gives them as strings
    const v =
      dataType === 'DateTime'
        ? new Date(value as string)
        : dataType === 'ByteString'
          ? Buffer.from(value as string, 'base64')
          : (dataType === 'Double' || dataType === 'Float') && typeof value === 'string'
            ? Number(value)
            : value;
    return new ua.Variant({ dataType: dt, arrayType: ua.VariantArrayType.Scalar, value: v });
  };
  const addVariable = (s: OpcuaVariableSpec) => {
    const levels = s.path.split('/');
    const parent = container(levels.slice(0, -1));
    const options = {
      componentOf: parent,
      browseName: s.browseName ?? levels[levels.length - 1],
      nodeId: `s=${s.id}`,
      dataType: s.dataType,
      minimumSamplingInterval: 50,
    };
    // an AnalogItem carries the EURange property that percent deadbands need
    const v = s.euRange
      ? (ns as unknown as { addAnalogDataItem(o: object): Variable }).addAnalogDataItem({ ...options, engineeringUnitsRange: s.euRange })
      : ns.addVariable(options);
    v.setValueFromSource(variant(s.dataType, s.value), ua.StatusCodes.Good, new Date());
    variables.set(s.id, { v, dataType: s.dataType });
  };
  for (const s of spec.variables) addVariable(s);
  await server.start();

  createInterface({ input: process.stdin }).on('line', (line) => {
    const cmd = JSON.parse(line) as { op: string; seq: number; id?: string; value?: unknown; variable?: OpcuaVariableSpec };
    try {
      if (cmd.op === 'set') {
        const e = variables.get(cmd.id!);
        if (!e) throw new Error(`no variable ${cmd.id}`);
        e.v.setValueFromSource(variant(e.dataType, cmd.value), ua.StatusCodes.Good, new Date());
      } else if (cmd.op === 'add') addressSpace.modelChangeTransaction(() => addVariable(cmd.variable!));
      else if (cmd.op === 'remove') {
        const e = variables.get(cmd.id!);
        if (!e) throw new Error(`no variable ${cmd.id}`);
        addressSpace.modelChangeTransaction(() => addressSpace.deleteNode(e.v));
        variables.delete(cmd.id!);
      }
      reply({ seq: cmd.seq });
    } catch (err) {
      reply({ seq: cmd.seq, error: (err as Error).message });
    }
  });
  reply({ ready: true, certificateFile: server.certificateFile });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  serve(JSON.parse(process.argv[2]) as OpcuaServerSpec & { port: number; pkiDir: string }).catch((err: Error) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
}
