// Decodes the packed state sent by devinterp_viz/widgets/_transport.py: binary float32 leaves
// ({dvz_array: 1, dtype, shape, data}) become {data: Float32Array, shape} arrays.

/** An n-dimensional float32 array: a flat Float32Array and its shape (row-major). */
export class NDArray {
  constructor(data, shape) {
    this.data = data;
    this.shape = shape;
  }

  get size() {
    return this.data.length;
  }

  /** The contiguous slice at a leading index, e.g. one chain of a (chains, draws) array. */
  at(...index) {
    let offset = 0;
    let stride = this.data.length;
    for (let k = 0; k < index.length; k++) {
      stride /= this.shape[k];
      offset += index[k] * stride;
    }
    return new NDArray(this.data.subarray(offset, offset + stride), this.shape.slice(index.length));
  }

  /** One element by full index. */
  get(...index) {
    let offset = 0;
    for (let k = 0; k < index.length; k++) offset = offset * this.shape[k] + index[k];
    return this.data[offset];
  }
}

const EMPTY = new NDArray(new Float32Array(0), [0]);

function toFloat32(data) {
  if (typeof data === "string") {
    // base64, from a page written by save_html
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }
  if (data instanceof DataView || ArrayBuffer.isView(data)) {
    const { buffer, byteOffset, byteLength } = data;
    if (byteOffset % 4 === 0) return new Float32Array(buffer, byteOffset, byteLength / 4);
    return new Float32Array(buffer.slice(byteOffset, byteOffset + byteLength));
  }
  if (data instanceof ArrayBuffer) return new Float32Array(data);
  return new Float32Array(0);
}

/** Recursively decode packed arrays in a state value (dicts, lists, scalars untouched). */
export function decode(value) {
  if (value === null || value === undefined) return value;
  if (Array.isArray(value)) return value.map(decode);
  if (typeof value === "object" && !ArrayBuffer.isView(value) && !(value instanceof ArrayBuffer)) {
    if (value.dvz_array) return new NDArray(toFloat32(value.data), value.shape);
    const out = {};
    for (const [key, item] of Object.entries(value)) out[key] = decode(item);
    return out;
  }
  return value;
}

/** Decode one synced trait of the model; missing arrays become empty ones. */
export function getDecoded(model, name) {
  return decode(model.get(name)) ?? {};
}

export function emptyArray() {
  return EMPTY;
}
