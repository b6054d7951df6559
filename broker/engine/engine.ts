import { Aedes, type AedesOptions } from './vendor/aedes/aedes.js';
import { usePlainParserBuffers } from './parser-buffers.js';

/**
 * The MQTT engine: the vendored Aedes 2 beta with mqprobe's patches (vendor/UPSTREAM.md). This and the other files of broker/engine/ are the only code that knows
 * it; a different engine replaces this folder and keeps BrokerApi (api.ts) and ClientHandle (client.ts).
 */
export type Engine = Aedes;
export type EngineOptions = Partial<AedesOptions>;

export const createEngine = (options: EngineOptions): Promise<Engine> => {
  usePlainParserBuffers();
  return Aedes.createBroker(options);
};
