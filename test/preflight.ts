/**
 * Runs first in `npm test`. The tests drive real peers (Mosquitto, Redis, syslog-ng, OpenSSL,
 * Elasticsearch through Maven), so when one is missing the suite stops here with one line naming
 * the Debian packages and the command that installs them, instead of failing test by test.
 */
import { preflightProblem } from './helpers/system-commands.js';

const problem = preflightProblem(process.env.PATH ?? '');
if (problem !== '') {
  console.error(problem);
  process.exit(1);
}
