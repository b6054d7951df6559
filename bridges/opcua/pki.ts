import { X509Certificate } from 'node:crypto';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { OPCUACertificateManager } from 'node-opcua-certificate-manager';
import type { OpcuaConfig } from './config.js';
import type { CertificateManagerModule } from './node-opcua.js';

export interface BeatPki {
  manager: OPCUACertificateManager;
  /** opcua_trust_on_first_use: off, on and nothing trusted yet (this start may trust), or on but already used. */
  trustOnFirstUse: 'off' | 'now' | 'used';
  trustedFolder: string;
  rejectedFolder: string;
}

/** How long to wait for node-opcua to file a refused certificate under rejected/ (it does so in the background). */
const REJECTED_WAIT_MS = 2000;

/**
 * The beat's PKI folder (node-opcua's layout: own/, trusted/certs/, rejected/, issuers/): created on
 * first start, with the configured server certificates added to the trusted ones. A fresh manager per
 * start reads the folder anew, so a certificate an operator moved into trusted/certs/ counts at the
 * next restart of the beat.
 */
export async function openPki(mod: CertificateManagerModule, cfg: OpcuaConfig, stateDir: string): Promise<BeatPki> {
  const pkiDir = cfg.pkiDir ?? join(stateDir, 'opcua-pki');
  await mkdir(pkiDir, { recursive: true, mode: 0o700 });
  const trustedFolder = join(pkiDir, 'trusted', 'certs');
  const nothingTrusted = cfg.serverCertificateFiles.length === 0 && (await pemFiles(trustedFolder)).length === 0;
  const trustOnFirstUse = !cfg.trustOnFirstUse ? 'off' : nothingTrusted ? 'now' : 'used';
  const manager = new mod.OPCUACertificateManager({
    rootFolder: pkiDir,
    automaticallyAcceptUnknownCertificate: trustOnFirstUse === 'now',
    disableFileWatchers: true,
  });
  await manager.initialize();
  for (const file of cfg.serverCertificateFiles) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(await readFile(file));
    } catch (err) {
      throw new Error(
        `opcua_server_certificate_file ${file}: not a PEM or DER certificate (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    await manager.trustCertificate(cert.raw);
  }
  return { manager, trustOnFirstUse, trustedFolder, rejectedFolder: manager.rejectedFolder };
}

/** Certificate files in a folder (none when it does not exist yet). */
export async function pemFiles(folder: string): Promise<string[]> {
  try {
    return (await readdir(folder)).filter((f) => /\.(pem|der)$/i.test(f));
  } catch {
    return [];
  }
}

/** Subject and SHA-1 thumbprint of a certificate file, for messages. */
export async function describeCertificate(file: string): Promise<string> {
  try {
    const cert = new X509Certificate(await readFile(file));
    return `subject "${cert.subject.replace(/\n/g, ', ')}", SHA-1 ${cert.fingerprint}`;
  } catch {
    return 'unreadable';
  }
}

/**
 * The error for a server certificate the PKI does not trust, naming the file node-opcua put under
 * rejected/ (the newest one there) and how to trust it.
 */
export async function untrustedError(pki: BeatPki, endpoint: string): Promise<Error> {
  const deadline = Date.now() + REJECTED_WAIT_MS;
  let newest: { file: string; mtime: number } | undefined;
  for (;;) {
    for (const f of await pemFiles(pki.rejectedFolder)) {
      const file = join(pki.rejectedFolder, f);
      const mtime = (await stat(file)).mtimeMs;
      if (!newest || mtime > newest.mtime) newest = { file, mtime };
    }
    if (newest || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const which = newest
    ? `${newest.file} (${await describeCertificate(newest.file)})`
    : `the certificate it presented (not filed under ${pki.rejectedFolder})`;
  const tofu =
    pki.trustOnFirstUse === 'off'
      ? ' (opcua_trust_on_first_use is off)'
      : ' (opcua_trust_on_first_use is used up: another server certificate is trusted already; make sure the server was re-keyed, not impersonated)';
  return new Error(
    `the server certificate of ${endpoint} is not trusted: ${which}. To trust it, move that file into ${pki.trustedFolder}/ or name it in opcua_server_certificate_file${tofu}`,
  );
}
