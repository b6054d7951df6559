import { execFileSync } from 'node:child_process';
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** Issues a client certificate with this CN, signed by the CA. */
  client(cn: string): { cert: string; key: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A throwaway CA and a server certificate for localhost/127.0.0.1, made with the openssl CLI. */
export function makePki(dir = tempDir('mqprobe-pki-')): TestPki {
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=mqprobe test CA', '-keyout', 'ca.key', '-out', 'ca.crt'],
    dir,
  );
  const issue = (name: string, cn: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.crt`,
      ],
      dir,
    );
    // readable by Mosquitto, which drops to its own user
    chmodSync(join(dir, `${name}.key`), 0o644);
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  const server = issue('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    serverCert: server.cert,
    serverKey: server.key,
    client: (cn) => issue(`client-${cn.replace(/[^a-zA-Z0-9_-]/g, '_')}`, cn, 'extendedKeyUsage=clientAuth\n'),
  };
}
