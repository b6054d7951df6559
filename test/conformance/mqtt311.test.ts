/**
 * MQTT 3.1.1 conformance: every row of mqtt311.ts (normative statements a server must satisfy that a
 * client can observe) against mqprobe and Mosquitto 2.0.11, with raw packets.
 */
import { mqtt311 } from './mqtt311.js';
import { runSuite } from './statements.js';

runSuite(mqtt311);
