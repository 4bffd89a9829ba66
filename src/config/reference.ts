/** The config reference in Markdown, generated from the schema (README and docs/config.md embed it). */
import { jsonSchema } from "./schema.ts";

type Node = {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  anyOf?: Node[];
  items?: Node;
  properties?: Record<string, Node>;
  additionalProperties?: Node | boolean;
  pattern?: string;
};

function typeOf(node: Node): string {
  if (node.enum) return node.enum.map((v) => `\`${JSON.stringify(v)}\``).join(" \\| ");
  if (node.anyOf) return node.anyOf.map(typeOf).join(" or ");
  if (node.type === "array") return `array of ${node.items ? typeOf(node.items) : "values"}`;
  if (node.type === "string" && node.pattern?.includes("ms|s|m|h")) return "duration";
  if (node.type === "object" && typeof node.additionalProperties === "object") return "table of strings";
  return node.type ?? "any";
}

function rows(prefix: string, node: Node): string[] {
  return Object.entries(node.properties ?? {}).flatMap(([key, child]) => {
    if (child.type === "object" && child.properties) return rows(`${prefix}${key}.`, child);
    const fallback = child.default === undefined ? "—" : `\`${JSON.stringify(child.default)}\``;
    return [`| \`${prefix}${key}\` | ${typeOf(child)} | ${fallback} | ${(child.description ?? "").replace(/\|/g, "\\|")} |`];
  });
}

export function configReference(): string {
  const schema = jsonSchema() as Node;
  const sections = Object.entries(schema.properties ?? {}).map(([name, node]) => {
    const table = node.type === "array" ? node.items! : node;
    const header = node.type === "array" ? `[[${name}]]` : `[${name}]`;
    return [`### \`${header}\``, "", table.description ?? "", "", "| key | type | default | meaning |", "|---|---|---|---|", ...rows("", table), ""].join("\n");
  });
  return sections.join("\n");
}
