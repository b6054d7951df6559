interface Setup<B> {
  setup(broker: B): Promise<void>;
}

/**
 * Runs `install(broker)` when Aedes calls the persistence's setup with the broker, before any
 * connection exists: the one place a persistence wrapper can adjust the broker itself.
 */
export function onSetup<T, B>(persistence: T, install: (broker: B) => void): T {
  const p = persistence as unknown as Setup<B>;
  const setup = p.setup.bind(p);
  // Aedes requires setup to be an async function (it checks the constructor name)
  p.setup = async (broker) => {
    install(broker);
    await setup(broker);
  };
  return persistence;
}
