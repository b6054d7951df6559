import ipaddr from 'ipaddr.js';
import { allowed } from '../rules/recon.js';
import type { Who } from './bans.js';
import type { AllowList } from './config.js';

function addressAllowed(list: AllowList, ip: string | undefined): boolean {
  if (ip === undefined || list.cidrs.length === 0) return false;
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.process(ip);
  } catch {
    return false;
  }
  return list.cidrs.some((range) => range[0].kind() === addr.kind() && addr.match(range));
}

/** Whether any of the facts is on the allow-list, or the client is internal (`$` ids): never banned nor disconnected. */
export function exempt(list: AllowList, who: Who): boolean {
  return (
    who.clientId?.startsWith('$') === true ||
    addressAllowed(list, who.ip) ||
    allowed(list.clients, who.clientId) ||
    allowed(list.users, who.username)
  );
}
