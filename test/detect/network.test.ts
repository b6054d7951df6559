import t from 'tap';
import ipaddr from 'ipaddr.js';
import { networkOf } from '../../detect/network.js';

t.test('networkOf: /24 of IPv4 (mapped IPv6 too), /64 of IPv6, undefined for anything else', async (t) => {
  const cases: [string, string | undefined][] = [
    ['192.0.2.17', '192.0.2.0/24'],
    ['0.0.0.0', '0.0.0.0/24'],
    ['255.255.255.255', '255.255.255.0/24'],
    ['10.1.2.3', '10.1.2.0/24'],
    ['::ffff:203.0.113.9', '203.0.113.0/24'],
    ['::ffff:cb00:7109', '203.0.113.0/24'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:DB8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['', undefined],
    ['localhost', undefined],
    ['256.1.1.1', undefined],
    ['1.2.3', networkOfSlow('1.2.3')],
    ['1.2.3.4/24', undefined],
    [' 1.2.3.4', undefined],
    ['1.2.3.4\n', undefined],
    ['x'.repeat(100_000), undefined],
  ];
  for (const [ip, want] of cases) t.equal(networkOf(ip), want, JSON.stringify(ip.length > 40 ? `${ip.slice(0, 10)}…` : ip));
});

t.test('networkOf: the dotted-quad shortcut answers as ipaddr.js does, octal and hex forms go the long way', async (t) => {
  for (let i = 0; i < 2000; i++) {
    const ip = Array.from({ length: 4 }, () => Math.floor(Math.random() * 256)).join('.');
    if (networkOf(ip) !== networkOfSlow(ip)) return t.fail(`${ip}: ${networkOf(ip)} against ${networkOfSlow(ip)}`);
  }
  t.pass('2,000 random addresses');
  for (const ip of ['010.0.0.1', '0x7f.0.0.1']) t.equal(networkOf(ip), networkOfSlow(ip), `${ip} as ipaddr.js reads it`);
});

/** The /24 as ipaddr.js computes it, the reference for the shortcut. */
function networkOfSlow(ip: string): string | undefined {
  try {
    const o = (ipaddr.process(ip) as ipaddr.IPv4).octets;
    return `${o[0]}.${o[1]}.${o[2]}.0/24`;
  } catch {
    return undefined;
  }
}
