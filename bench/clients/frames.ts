/** Length-prefixed frames out of a byte stream: chunks are kept until a frame is whole, then joined once. */
export function frameReader(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let chunks: Buffer[] = [];
  let buffered = 0;
  return (chunk) => {
    chunks.push(chunk);
    buffered += chunk.length;
    while (buffered >= 4) {
      const head = chunks[0].length >= 4 ? chunks[0] : Buffer.concat(chunks);
      const length = head.readUInt32BE(0);
      if (buffered < 4 + length) return;
      const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, buffered);
      onFrame(all.subarray(4, 4 + length));
      const rest = all.subarray(4 + length);
      chunks = rest.length > 0 ? [rest] : [];
      buffered = rest.length;
    }
  };
}
