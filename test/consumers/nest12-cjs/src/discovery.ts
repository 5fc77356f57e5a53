// Discovery stays on loopback: the driver (test/consumers/run.mjs) passes a multicast group of its own
// through interface 127.0.0.1 in KABLE_DISCOVERY.
export function discovery() {
  const options = JSON.parse(process.env.KABLE_DISCOVERY ?? 'null');
  if (options === null) throw new Error('Set KABLE_DISCOVERY to the loopback discovery options (JSON).');
  return options;
}
