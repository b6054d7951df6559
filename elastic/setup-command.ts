/**
 * `mqprobe setup elastic`: installs templates, ILM policy, ingest pipeline, Kibana objects and ML
 * jobs into Elasticsearch (or OpenSearch), like `filebeat setup`. Registered under `setup` by the CLI.
 */
import { Command, Option } from 'commander';
import { connect, ElasticError, readCredentials, type RestClient } from './connection.js';
import { detectCapabilities, install, installMlJobs, validateDeleteAfter, type StepResult } from './install.js';
import { importSavedObjects } from './kibana.js';
import { dataStreamName, isValidNamespace } from './assets.js';

export interface ElasticSetupOptions {
  es: string;
  kibana?: string;
  kibanaSpace?: string;
  namespace: string;
  apiKeyFile?: string;
  user?: string;
  passwordFile?: string;
  cafile?: string;
  ilmDeleteAfter: string;
}

export interface SetupIo {
  out(line: string): void;
}

function parseUrl(v: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ElasticError(`${what}: expected an http:// or https:// URL, got "${v}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new ElasticError(`${what}: expected an http:// or https:// URL, got "${u.protocol}"`);
  if (u.username || u.password)
    throw new ElasticError(`${what}: put credentials in --user/--password-file or --api-key-file, not in the URL`);
  return u;
}

function line(r: StepResult): string {
  return `  ${r.outcome.padEnd(9)} ${r.what}${r.detail ? `: ${r.detail}` : ''}`;
}

/** Runs the whole setup; throws ElasticError with one clear line on any problem. */
export async function runElasticSetup(o: ElasticSetupOptions, io: SetupIo): Promise<StepResult[]> {
  const url = parseUrl(o.es, '--es');
  const kibanaUrl = o.kibana ? parseUrl(o.kibana, '--kibana') : undefined;
  if (!isValidNamespace(o.namespace))
    throw new ElasticError(`--namespace: expected lowercase letters, digits, "_" or "." (no "-"), got "${o.namespace}"`);
  validateDeleteAfter(o.ilmDeleteAfter);
  const client: RestClient = await connect({
    url,
    apiKeyFile: o.apiKeyFile,
    username: o.user,
    passwordFile: o.passwordFile,
    cafile: o.cafile,
  });
  try {
    const name = client.info.product === 'elasticsearch' ? 'Elasticsearch' : 'OpenSearch';
    io.out(`${name} ${client.info.version} at ${url.origin}`);
    const caps = await detectCapabilities(client);
    const progress = (r: StepResult) => io.out(line(r));
    const results = await install(client, caps, { namespace: o.namespace, ilmDeleteAfter: o.ilmDeleteAfter, progress });
    if (kibanaUrl) {
      if (client.info.product === 'opensearch') {
        const r: StepResult = {
          what: 'Kibana objects',
          outcome: 'skipped',
          detail: 'the dashboard is built for Kibana 8.9+ (Lens); OpenSearch Dashboards cannot import it',
        };
        results.push(r);
        progress(r);
      } else {
        // Kibana takes the same credentials as Elasticsearch.
        const creds = readCredentials({ apiKeyFile: o.apiKeyFile, username: o.user, passwordFile: o.passwordFile, cafile: o.cafile });
        const r = await importSavedObjects({ url: kibanaUrl, headers: creds.headers, ca: creds.ca, space: o.kibanaSpace });
        results.push(r);
        progress(r);
      }
    }
    results.push(...(await installMlJobs(client, caps, progress)));
    const count = (k: StepResult['outcome']) => results.filter((r) => r.outcome === k).length;
    io.out(
      `Done: ${count('created')} created, ${count('updated')} updated, ${count('unchanged')} unchanged, ${count('skipped')} skipped. ` +
        `Capture events go to the data stream ${dataStreamName(o.namespace)}.`,
    );
    return results;
  } finally {
    await client.close();
  }
}

export function elasticSetupCommand(io: SetupIo = { out: (l) => process.stdout.write(`${l}\n`) }): Command {
  return new Command('elastic')
    .description(
      'Install the index templates, ILM policy, ingest pipeline, Kibana dashboard and ML jobs for mqprobe capture events (idempotent)',
    )
    .requiredOption('--es <url>', 'Elasticsearch or OpenSearch URL, e.g. https://es.example:9200')
    .option('--kibana <url>', 'Kibana URL: also import the data view and the "MQTT broker" dashboard')
    .option('--kibana-space <space>', 'Kibana space to import into (default space when omitted)')
    .option('--namespace <namespace>', 'data stream namespace (events go to logs-mqtt.capture-<namespace>)', 'default')
    .option('--api-key-file <file>', 'file holding an API key (encoded form)')
    .option('--user <user>', 'basic-auth user (with --password-file)')
    .option('--password-file <file>', 'file holding the basic-auth password')
    .option('--cafile <file>', 'PEM CA bundle for https URLs')
    .addOption(new Option('--ilm-delete-after <age>', 'delete capture indices this long after rollover').default('30d'))
    .action(async (opts: ElasticSetupOptions, cmd: Command) => {
      try {
        await runElasticSetup(opts, io);
      } catch (e) {
        if (!(e instanceof ElasticError)) throw e;
        cmd.error(`mqprobe setup elastic: ${e.message}`, { exitCode: 1 });
      }
    });
}
