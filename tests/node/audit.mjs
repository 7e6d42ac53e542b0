// The GraphQL-over-HTTP audit (graphql-http's serverAudits) against a running calltrail, and
// the standard introspection query that schema-driven tools send.
//
//   CALLTRAIL_URL=http://127.0.0.1:8080 node tests/node/audit.mjs
//
// Prints every audit that does not pass. Exits non-zero when a MUST fails, when the schema
// cannot be built from introspection, or when docs/graphql-http.md says something else about
// a SHOULD than what the audit found (each SHOULD that warns is listed there with its reason).
import { readFile } from 'node:fs/promises';
import { buildClientSchema, getIntrospectionQuery } from 'graphql';
import { serverAudits } from 'graphql-http';

const base = process.env.CALLTRAIL_URL;
if (!base) {
  console.error('set CALLTRAIL_URL to a running calltrail, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
const url = new URL('/graphql', base).toString();
const problems = [];

const results = await Promise.all(serverAudits({ url }).map((audit) => audit.fn()));
const levels = { MUST: [0, 0], SHOULD: [0, 0], MAY: [0, 0] };
const shouldWarnings = new Set();
for (const result of results) {
  const level = result.name.split(' ')[0];
  const passed = result.status === 'ok';
  levels[level][passed ? 0 : 1] += 1;
  if (passed) continue;
  console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${result.reason}`);
  if (level === 'MUST') problems.push(`MUST ${result.id} fails: ${result.name}`);
  if (level === 'SHOULD') shouldWarnings.add(result.id);
}
for (const [level, [passed, failed]] of Object.entries(levels)) {
  console.log(`${level}: ${passed} pass, ${failed} do not`);
}

// docs/graphql-http.md has one row per SHOULD: `| ID | name | passes or warns | reason |`.
const doc = await readFile(new URL('../../docs/graphql-http.md', import.meta.url), 'utf8');
const documented = new Map();
for (const line of doc.split('\n')) {
  const cells = line.split('|').map((cell) => cell.trim());
  if (cells.length >= 5 && /^SHOULD /.test(cells[2].replaceAll('`', ''))) {
    documented.set(cells[1].replaceAll('`', ''), cells[3]);
  }
}
for (const result of results.filter((r) => r.name.startsWith('SHOULD '))) {
  const expected = shouldWarnings.has(result.id) ? 'warns' : 'passes';
  const said = documented.get(result.id);
  if (said !== expected) {
    problems.push(
      `docs/graphql-http.md says SHOULD ${result.id} ${said ?? 'nothing'}; it ${expected}: ${result.name}`,
    );
  }
}

// What GraphiQL, codegen and schemathesis send, with every option graphql-js has for it.
const introspection = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json' },
  body: JSON.stringify({
    query: getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
    }),
  }),
});
const answer = await introspection.json();
if (introspection.status !== 200 || answer.errors) {
  problems.push(`the introspection query is refused: ${introspection.status} ${JSON.stringify(answer)}`);
} else {
  const schema = buildClientSchema(answer.data);
  const calls = schema.getQueryType()?.getFields().calls;
  if (!calls) problems.push('the schema built from introspection has no Query.calls');
  else console.log(`introspection: ${Object.keys(schema.getTypeMap()).length} types, Query.calls: ${calls.type}`);
}

for (const problem of problems) console.error(`FAIL ${problem}`);
process.exit(problems.length === 0 ? 0 : 1);
