// Fixed explanations printed under the tables of docs/benchmarks.md: what each row's result comes from,
// and the figures from before each change (measured once, so they are text here, not regenerated).

export const SMALL_REQUEST_NOTES = [
  'Every transport gets the same loaded warm-up before it is measured (as many requests as the run, at most',
  '20,000, 100 in flight, after 2,000 sequential ones): 2,000 sequential calls alone left Kable’s batched',
  'paths partly unoptimised, and its throughput against the corked raw socket read 0.64 in the run of',
  '2026-11-23 where five alternating pairs with the warm-up gave about 0.92. Since then, per request: the',
  'client builds the route string of an object pattern once (it was a fresh string per call, hashed again',
  'by the router and the writer); REQUEST frames are written and read by hand around their data, as value',
  'frames are (lib/data-plane/request-frame.ts; for this `sum`, writing 223 → 84 ns and reading 389 → 118',
  'ns, the codec’s time in a 60,000-request profile from about 40 ms per process to under 4); and a client’s',
  'request deadlines share one timer instead of a `setTimeout` per request (90 → 62 ns per request). CPU',
  'profiles of both processes (BENCH_CPU_PROF=<dir>, 400,000 requests, 100 in flight) show each side over',
  'half idle, for Kable and for the corked raw socket alike, and the socket write the largest item of each',
  '(about 40% of the busy time): neither is CPU-bound, and the rest is how batches ping-pong between the',
  'two processes. Writing a whole tick in one write instead of slices of 32 frames cut the caller’s writes',
  'about five-fold without raising throughput (median 68,000 against 82,000 req/s over five alternating',
  'pairs), so the caller’s slices stay; the server’s replies, which answer what one read brought, leave once',
  'per tick (10 alternating pairs: server / client CPU per request 2.16 / 1.98 → 2.00 / 1.78 µs, throughput',
  '1.09 x that of slicing there too).',
];

export const PAYLOAD_NOTES = [
  'The frame writer sends a top-level binary of 64 KiB or more from the caller’s own memory (header, payload',
  'and tail as separate parts of one corked `writev`; no join of the whole frame), and handlers and callers',
  'receive binaries as `Buffer` views into the received frame. Before that change (same harness, one run,',
  'load about 10) Kable / raw was 0.76 at 64 KiB, 0.25 at 1 MiB and 0.15 at 8 MiB. These rows raise the',
  'client’s `maxQueuedBytes` to 64 MiB: four 8 MiB requests in flight are over the default 32 MiB queued',
  'toward one server, and the fourth would be refused with `KABLE_BACKPRESSURE`. Each process first sends a',
  'quarter of its requests, loaded and unmeasured (either transport): with 8 sequential calls only, the',
  '64 KiB row (4,096 requests, a third of a second) measured part of each side’s JIT warm-up and read 0.76',
  'to 1.11 x from one full run to the next. Warmed, it still swings (per run above): both rates ride on the',
  'machine’s loopback work and on how often V8 runs a full collection to free the 64 KiB read buffers: two',
  'ad hoc runs over 2 GiB in one process gave Kable 1,286 against the raw socket’s 2,728 MB/s, then 1,082',
  'against 597 (in that one, 211 full collections in the raw process besides the 33 forced, Kable 24).',
];

export const STRING_NOTES = [
  'The writer encodes a top-level string of 256 characters or more (a request’s data, a reply or stream',
  'value) with Node’s own UTF-8 encoder rather than the codec, whose JavaScript loop counting a string’s',
  'UTF-8 bytes was half of Kable’s time for these rows; the bytes on the wire are the same, and from 64 KiB',
  'of UTF-8 the string is a part of its own, not copied into the batch. A string inside a value (a field,',
  'an array element) goes through the codec, whose string method the frame encoder replaces on its own',
  'instance so that strings of 256 characters or more are counted natively (lib/data-plane/frame-encoder.ts;',
  'same bytes, checked against the codec in the tests). The receiver decodes each string once (the codec’s',
  '`TextDecoder`). Before: Kable / codec 0.37, 0.48, 0.71 and 0.75 for the first four rows (one run, load',
  'about 7); 0.64 and 0.60 for the string in an object (two runs, ad hoc, against 1.29 and 1.27 after). The',
  '64 KiB row gave 0.74 over 1,024 requests, most of them the child settling, hence its 8,192.',
];

export const STREAM_NOTES = [
  'Three changes put the stream rows above the raw socket. The frame decoder releases each received chunk',
  'once its frames are delivered (it used to keep up to 1,024 of them, and collecting that memory was most',
  'of the 64 KiB row’s cost). Value and reply frames (`[3, id, value]`) are written and read by hand around',
  'the value (lib/data-plane/next-frame.ts): no MessagePack array is built or walked per value, integers',
  'and binaries need no codec call, binaries arrive as views. A stream’s values leave in writes of about',
  '16 KiB rather than every 32 frames (100,000 small integers: about 70 writes instead of over 3,000).',
  'Before these changes (same harness, loaded machine) Kable / raw was 0.64 and 0.85 for small integers,',
  '0.44 and 0.80 for 64 KiB values; CPU per value went from about 1.3 to 0.3 µs and from about 160 to',
  '70 µs. Rates swing with the machine’s load, since both ends wait on the kernel’s loopback work: the CPU',
  'columns are the steadier figure.',
];
