/**
 * MQTT 5.0 conformance: every row of mqtt5.ts (normative statements a server must satisfy that a client
 * can observe) against mqprobe and Mosquitto 2.0.11, with raw packets.
 */
import { mqtt5 } from './mqtt5.js';
import { runSuite } from './statements.js';

runSuite(mqtt5);
