// Volumes kept in the browser for the slice viewer (issue 14). Plain JS, no imports: the kernel
// (slice_viewer.py) joins this file and slice_viewer.js into the widget's one ES module.
//
// The kernel sends volumes as custom messages, {type: "volume", key, shape} with two binary
// buffers (zlib streams of the uint8 MRI and of the structure codes), and names the one to paint
// in the `volume_key` trait. A store keeps the last KEEP decoded volumes by key; a key is the
// volume's content ("<phase>:<patient folder>#<digest>"), so a held volume is exactly the bytes the
// kernel would send again. The store never decides what is shown: the viewer asks it for the key
// the kernel named, and for nothing else.

const KEEP = 8; // volumes kept (slice_viewer.py BROWSER_KEEPS; the kernel assumes fewer)
const KEEP_BYTES = 256 * 1024 * 1024; // and at most this much decoded data

// Bytes arrive as a DataView (binary buffer); accept the other buffer types too.
function asBytes(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(0);
}

// "deflate" in the Compression Streams API is the zlib format that Python's zlib.compress writes.
async function inflate(value) {
  const bytes = asBytes(value);
  if (bytes.length === 0) return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// "<serial>:<phase>:<patient>" -> "<patient folder name> <phase>".
function describe(id) {
  const [, phase = "", ...rest] = String(id).split(":");
  const patient = rest.join(":").split(/[\\/]/).filter(Boolean).pop() || "this case";
  return `${patient} ${phase}`.trim();
}

// "<phase>:<patient folder>#<digest>" -> "<patient folder name> <phase>", as describe() words it.
function describeKey(key) {
  const text = String(key);
  const cut = text.lastIndexOf("#");
  return describe(`0:${cut < 0 ? text : text.slice(0, cut)}`);
}

// Decoded volumes by key, least recently used dropped first. get() returns a promise of
// {image, labels, shape} (or of an error), decoding or decoded; undefined when not held.
function volumeStore() {
  const entries = new Map(); // key -> { promise, bytes }
  let bytes = 0;

  function evict(keepKey) {
    for (const [key, entry] of entries) {
      if (entries.size <= KEEP && bytes <= KEEP_BYTES) break;
      if (key === keepKey) continue;
      entries.delete(key);
      bytes -= entry.bytes;
    }
  }

  function put(key, shape, buffers) {
    if (entries.has(key)) return entries.get(key).promise; // the same bytes: keep the decoded copy
    const n = shape[0] * shape[1] * shape[2];
    const entry = { bytes: 2 * n, promise: null };
    entry.promise = Promise.all([inflate(buffers[0]), inflate(buffers[1])]).then(([image, labels]) => {
      if (n === 0 || image.length !== n || (labels.length && labels.length !== n)) {
        throw new Error(`the volume has ${image.length} voxels but its shape ${shape.join(" x ")} needs ${n}`);
      }
      return { image, labels: labels.length ? labels : new Uint8Array(n), shape: shape.slice() };
    });
    entry.promise.then((decoded) => (entry.decoded = decoded), () => {}); // errors: reported when shown
    entries.set(key, entry);
    bytes += entry.bytes;
    evict(key);
    return entry.promise;
  }

  function get(key) {
    const entry = entries.get(key);
    if (!entry) return undefined;
    entries.delete(key); // most recently used last
    entries.set(key, entry);
    return entry.promise;
  }

  // The decoded volume now, without waiting (undefined while decoding or not held): a paint ahead
  // of the kernel's answer happens in the key's own event, or not at all.
  function decodedNow(key) {
    const entry = entries.get(key);
    if (!entry || !entry.decoded) return undefined;
    get(key);
    return entry.decoded;
  }

  return { put, get, decodedNow, has: (key) => entries.has(key), keys: () => [...entries.keys()] };
}
