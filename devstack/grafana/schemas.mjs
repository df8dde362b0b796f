// JSON schemas of Grafana's dashboard and panel types, generated from the TypeScript declarations of
// @grafana/schema by ts-json-schema-generator: TS enums become their values ("absolute", not
// ThresholdsMode.Absolute) and interfaces without an index signature become closed objects.
// Usage: node schemas.mjs INSTALL_DIR PANEL_TYPE... Prints a JSON object:
// {"dashboard": <Dashboard>, "panels": {"<type>": {"Options": <Options>, "FieldConfig": <FieldConfig> | null}}}
// (null: the panel type has no custom field config).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [dir, ...panelTypes] = process.argv.slice(2);
const require = createRequire(join(dir, "package.json"));
const { createGenerator } = require("ts-json-schema-generator");
const raw = join(dir, "node_modules/@grafana/schema/dist/types/raw");

// One declaration file per kind, not the package index, where several DataSourceRef types meet.
function generator(path) {
  return createGenerator({ path, skipTypeCheck: true, topRef: false, jsDoc: "none", additionalProperties: false });
}

const panels = {};
for (const type of panelTypes) {
  const path = join(raw, "composable", type, "panelcfg/x/types.gen.d.ts");
  const text = readFileSync(path, "utf8");
  // The file's own types only: the generator would otherwise find @grafana/schema's generic FieldConfig.
  const declares = (name) => new RegExp(`^export interface ${name}\\b`, "m").test(text);
  if (!declares("Options")) throw new Error(`${path} declares no Options`);
  const gen = generator(path);
  panels[type] = {
    Options: gen.createSchema("Options"),
    FieldConfig: declares("FieldConfig") ? gen.createSchema("FieldConfig") : null,
  };
}
const dashboard = generator(join(raw, "dashboard/x/types.gen.d.ts")).createSchema("Dashboard");
process.stdout.write(JSON.stringify({ dashboard, panels }));
