// `node --import ./record-imports.mjs ...`: appends the URL of every module the process loads
// (ES modules and require()d files alike, through the module hooks) to the file named by
// RECORD_IMPORTS_TO, one a line. For tests that check what a program does not load.
import { register } from 'node:module';

const hooks = `
import { appendFileSync } from 'node:fs';
const to = process.env.RECORD_IMPORTS_TO;
export async function load(url, context, nextLoad) {
  if (to) appendFileSync(to, url + '\\n');
  return nextLoad(url, context);
}
`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
