import { format } from 'node:util';
import type { Logger } from 'pino';

export type OpcuaModule = typeof import('node-opcua-client');
export type CertificateManagerModule = typeof import('node-opcua-certificate-manager');

let loaded: Promise<{ ua: OpcuaModule; pki: CertificateManagerModule }> | undefined;
let current: Logger | undefined;

/**
 * node-opcua, loaded when the beat first starts rather than with the broker: its import runs a
 * 4096-bit RSA key generation (a Node-version check) and its logging writes to the console. Its
 * logging goes to the beat's logger instead (warnings at debug level: the beat reports what matters
 * itself, in its own words).
 */
export function loadNodeOpcua(log: Logger): Promise<{ ua: OpcuaModule; pki: CertificateManagerModule }> {
  current = log;
  loaded ??= (async () => {
    const [ua, pki] = await Promise.all([import('node-opcua-client'), import('node-opcua-certificate-manager')]);
    const to =
      (level: 'debug' | 'warn') =>
      (_context?: unknown, ...args: unknown[]) =>
        current?.[level]({ module: 'node-opcua' }, format(...args));
    ua.setDebugLogger(to('debug'));
    ua.setWarningLogger(to('debug'));
    ua.setErrorLogger(to('warn'));
    return { ua, pki };
  })();
  return loaded;
}
