import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ROOT } from '../support/build.js';

const PAGES = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];

/** The page's text outside fenced code blocks and inline code, where a link is only text. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const [, heading] of markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const base = heading!
      .replace(/`/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** Every relative link and image of a page: `[text](target)`, `![alt](target)` and `<a href>`/`<img src>`. */
function relativeLinks(markdown: string): string[] {
  const text = prose(markdown);
  const targets = [
    ...[...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!),
    ...[...text.matchAll(/<(?:a|img)\s[^>]*?(?:href|src)="([^"]+)"/g)].map((m) => m[1]!),
  ];
  return targets.filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

function brokenLinks(page: string): string[] {
  const broken: string[] = [];
  for (const link of relativeLinks(readFileSync(path.join(ROOT, page), 'utf8'))) {
    const [file = '', anchor] = link.split('#');
    const target = file === '' ? page : path.posix.normalize(path.posix.join(path.posix.dirname(page), decodeURIComponent(file)));
    if (target.startsWith('..') || !existsSync(path.join(ROOT, target))) {
      broken.push(`${link} (no file ${target})`);
      continue;
    }
    if (anchor === undefined) continue;
    if (!target.endsWith('.md') || statSync(path.join(ROOT, target)).isDirectory()) {
      broken.push(`${link} (an anchor into ${target}, which is not a Markdown page)`);
    } else if (!anchors(readFileSync(path.join(ROOT, target), 'utf8')).has(anchor)) {
      broken.push(`${link} (no heading #${anchor} in ${target})`);
    }
  }
  return broken;
}

/** Repository paths the page names in code spans (`src/db/schema.ts`), leaving out patterns such as `upgrade-NNN.sql`. */
function namedPaths(markdown: string): string[] {
  const spans = [...markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
  return spans.filter((span) => /^(src|test|tools|scripts|db|deploy|docs|views|public)\/[\w./-]*$/.test(span) && !/NNN|\*/.test(span));
}

describe('README and docs/', () => {
  test('when a newcomer opens the README, then it is at most 250 lines and links to each page under docs/', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    assert.ok(readme.split('\n').length <= 250, `README.md has ${readme.split('\n').length} lines`);
    const linked = new Set(relativeLinks(readme).map((link) => link.split('#')[0]));
    for (const page of PAGES.filter((p) => p !== 'README.md')) assert.ok(linked.has(page), `README.md links to ${page}`);
  });

  test('when every relative link and anchor of the pages is followed, then each resolves', () => {
    assert.ok(PAGES.length >= 5, `pages: ${PAGES.join(', ')}`);
    for (const page of PAGES) assert.deepEqual(brokenLinks(page), [], page);
  });

  test('when a page names a file or folder of the repository, then it exists', () => {
    for (const page of PAGES) {
      const missing = namedPaths(readFileSync(path.join(ROOT, page), 'utf8')).filter((named) => !existsSync(path.join(ROOT, named)));
      assert.deepEqual(missing, [], `${page} names what is not there`);
    }
  });

  test('when the checker reads a heading or a link, then it finds what GitHub would', () => {
    assert.deepEqual(
      [...anchors('# Operations: the runbook\n## (a) Local development against `cockroach demo`\n## 9. Upgrade and roll back\n## Notes\n## Notes\n```\n# not a heading\n```')],
      ['operations-the-runbook', 'a-local-development-against-cockroach-demo', '9-upgrade-and-roll-back', 'notes', 'notes-1'],
    );
    assert.deepEqual(namedPaths('`src/db/schema.ts` `db/cockroach/upgrade-NNN.sql` `npm test` `src/db/migrations/NNN-*.ts`'), ['src/db/schema.ts']);
    assert.deepEqual(relativeLinks('[a](docs/x.md#y) ![b](img.png) [c](https://example.com) `[d](no.md)`\n```\n[e](no.md)\n```'), ['docs/x.md#y', 'img.png']);
  });
});
