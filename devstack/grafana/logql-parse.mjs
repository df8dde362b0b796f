// Parses LogQL with @grafana/lezer-logql, the grammar of Grafana's Loki query editor.
// Usage: node logql-parse.mjs INSTALL_DIR < queries.json (a JSON array of strings). Prints a JSON array:
// per query, the [from, to] offsets of every error node of its syntax tree (none: the query parses).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.argv[2], "package.json"));
const { parser } = require("@grafana/lezer-logql");

const queries = JSON.parse(readFileSync(0, "utf8"));
const errors = queries.map((query) => {
  const found = [];
  parser.parse(query).iterate({
    enter(node) {
      if (node.type.isError) found.push([node.from, node.to]);
    },
  });
  return found;
});
process.stdout.write(JSON.stringify(errors));
