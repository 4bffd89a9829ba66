// The shim is imported as text (`with { type: "text" }`) by src/shims/bun-shim.ts and embedded in the binary.
declare const source: string;
export default source;
