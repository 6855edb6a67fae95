import {
  type CreateNodeOptions,
  Document,
  isAlias,
  isCollection,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  type Node,
  type Pair,
  parseDocument,
  type ToStringOptions,
  visit,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml';

/**
 * Edits of cluster.yaml that keep the user's comments, key order and
 * formatting: the parsed document is changed in place, node by node, instead
 * of stringifying a fresh object. Pure: text in, text out.
 */

// An object used twice in `next` is written out twice, never as an &anchor / *alias.
const CREATE: CreateNodeOptions = { aliasDuplicateObjects: false };

/**
 * Mutates `doc` so that `doc.toJS()` deep-equals `next` (JSON-like data; an
 * `undefined` property counts as absent), touching as little as possible:
 * - maps: keys in both are updated recursively, new keys are appended in
 *   `next`'s order, keys missing from `next` are deleted;
 * - sequences: items are matched by index, extra ones appended, missing ones removed;
 * - a scalar whose value is unchanged keeps its node (comment, quoting, format);
 *   a changed scalar of the same JS type keeps its node and only gets the new value;
 * - a value whose type changes gets a new node, which inherits the old node's
 *   comments and blank line.
 * Flow collections stay flow; kept nodes keep their comments.
 */
export function updateDocument(doc: Document, next: unknown): void {
  const old = doc.contents;
  if (old === null && next == null) return;
  keepLeadingComment(old);
  const root = updateNode(doc, old, next, false);
  if (root !== old) doc.contents = root;
  if (!sameData(doc.toJS(), next)) {
    throw new Error('updateDocument: the edited YAML document does not match the new value');
  }
}

/**
 * The text of `text` with its data replaced by `next`, edited in place (see
 * updateDocument) so comments, key order and formatting stay. Without text (or
 * with only whitespace) a new document is started, `header` as its first
 * comment line(s), e.g. `# yaml-language-server: $schema=…`. Indentation,
 * sequence indentation and the padding inside `{ }` / `[ ]` follow the
 * existing text. Throws the first YAML syntax error of `text`.
 */
export function editConfigText(text: string | undefined, next: unknown, header?: string): string {
  if (text === undefined || text.trim() === '') {
    const doc = new Document(next, CREATE);
    if (header) addHeader(doc, header);
    return doc.toString({ lineWidth: 0 });
  }
  const doc = parseDocument(text);
  const error = doc.errors[0];
  if (error) throw error;
  const style = inferStyle(doc, text);
  liftKeyLineComments(doc, text);
  keepTrailingComment(doc, text);
  recordCommentGaps(doc, text);
  updateDocument(doc, next);
  const out = doc.toString({ ...style, commentString, lineWidth: 0 });
  return text.includes('\r\n') ? out.replace(/\n/g, '\r\n') : out;
}

type PlainObject = Record<string, unknown>;

function isPlainObject(v: unknown): v is PlainObject {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function isScalarValue(v: unknown): boolean {
  return v === null || (typeof v !== 'object' && typeof v !== 'function' && v !== undefined);
}

/** Deep equality of JSON-like data; a property whose value is undefined counts as absent. */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number') return Number.isNaN(a) && Number.isNaN(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((v, i) => sameData(v, b[i]))
    );
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && sameData(a[k], b[k]));
  }
  return false;
}

/** The node to hold `next` where `node` was: `node` itself, updated, or a replacement. */
function updateNode(doc: Document, node: unknown, next: unknown, inFlow: boolean): Node {
  if (isAlias(node)) {
    // Kept while it still stands for the right value (its anchor may have changed or gone).
    let target: unknown;
    try {
      target = node.resolve(doc)?.toJS(doc);
    } catch {
      return replaceNode(doc, node, next);
    }
    return sameData(target, next) ? node : replaceNode(doc, node, next);
  }
  if (isMap(node) && isPlainObject(next)) {
    updateMap(doc, node, next, inFlow || Boolean(node.flow));
    return node;
  }
  if (isSeq(node) && Array.isArray(next)) {
    updateSeq(doc, node, next, inFlow || Boolean(node.flow));
    return node;
  }
  if (isScalar(node) && isScalarValue(next)) {
    if (sameData(node.value, next)) return node;
    if (node.value !== null && next !== null && typeof node.value === typeof next) {
      node.value = next;
      return node;
    }
  }
  return replaceNode(doc, node, next);
}

/**
 * yaml attaches the comment at the top of a file (when no blank line follows
 * it) to the first key or item. Make it the whole content's, which prints in
 * the same place, so it stays when that first entry goes or the content is
 * replaced.
 */
function keepLeadingComment(root: unknown): void {
  if (!isBlock(root)) return;
  const { items } = root as YAMLMap | YAMLSeq;
  const first: unknown = items[0];
  const node = isPair(first) ? first.key : first;
  if (!isNode(node) || !node.commentBefore) return;
  (root as Node).commentBefore = joinComments((root as Node).commentBefore, node.commentBefore);
  node.commentBefore = undefined;
}

/** A new node for `next` that takes over `old`'s comments and blank line. */
function replaceNode(doc: Document, old: unknown, next: unknown): Node {
  const created = doc.createNode(next, CREATE);
  if (isNode(old)) {
    if (old.spaceBefore) created.spaceBefore = true;
    if (old.commentBefore) created.commentBefore = old.commentBefore;
    if (old.comment) created.comment = old.comment;
  }
  return created;
}

function keyOf(key: unknown): string | undefined {
  const value = isScalar(key) ? key.value : key;
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? undefined : String(value);
}

function joinComments(...comments: (string | null | undefined)[]): string | undefined {
  const kept = comments.filter((c): c is string => Boolean(c));
  if (kept.length < 2) return kept[0];
  // Several comments print on lines of their own: a recorded gap has no use there.
  return kept.map((c) => (c.startsWith(GAP) ? (c.split(GAP)[2] ?? '') : c)).join('\n');
}

/** Printed on more than one line: a non-empty block collection. */
function isBlock(node: unknown): boolean {
  return isCollection(node) && !node.flow && node.items.length > 0;
}

function updateMap(doc: Document, map: YAMLMap, next: PlainObject, inFlow: boolean): void {
  const wanted = new Map(Object.entries(next).filter(([, v]) => v !== undefined));
  const seen = new Set<string>();
  // In document order, removing as we go, so an alias is checked after any
  // change to the anchor it points back to.
  for (let i = 0; i < map.items.length; ) {
    const pair = map.items[i] as Pair;
    const key = keyOf(pair.key);
    if (key === undefined || !wanted.has(key) || seen.has(key)) {
      map.items.splice(i, 1);
      continue;
    }
    seen.add(key);
    const old = pair.value;
    const value = updateNode(doc, old, wanted.get(key), inFlow);
    if (value !== old) {
      pair.value = value;
      if (!inFlow && isNode(pair.key) && isNode(value)) placeComments(pair.key, old, value);
    }
    i++;
  }
  for (const [key, value] of wanted) {
    if (!seen.has(key)) map.items.push(doc.createPair(key, value, CREATE));
  }
}

/**
 * After a block map's value changed shape, keep its comments where they read
 * naturally: `port: 22 # ssh` → `port: # ssh` above a new block collection,
 * and back onto the line of a new scalar.
 */
function placeComments(key: Node, old: unknown, value: Node): void {
  if (!isBlock(old) && isBlock(value) && value.comment) {
    key.comment = joinComments(key.comment, value.comment);
    value.comment = undefined;
  } else if (isBlock(old) && !isBlock(value)) {
    value.comment = joinComments(key.comment, value.comment);
    key.comment = undefined;
    // Comments that stood above the collection's first entry go above the key.
    if (value.commentBefore) {
      key.commentBefore = joinComments(key.commentBefore, value.commentBefore);
      value.commentBefore = undefined;
    }
  }
}

function updateSeq(doc: Document, seq: YAMLSeq, next: unknown[], inFlow: boolean): void {
  for (let i = 0; i < next.length; i++) {
    if (i < seq.items.length) {
      seq.items[i] = updateNode(doc, seq.items[i], next[i], inFlow);
    } else {
      seq.items.push(doc.createNode(next[i], CREATE));
    }
  }
  seq.items.splice(next.length);
}

function addHeader(doc: Document, header: string): void {
  const comment = header
    .split('\n')
    .map((line) => line.replace(/^#/, ''))
    .join('\n');
  if (isNode(doc.contents))
    doc.contents.commentBefore = joinComments(comment, doc.contents.commentBefore);
  else doc.commentBefore = joinComments(comment, doc.commentBefore) ?? null;
}

function column(text: string, offset: number): number {
  return offset - (text.lastIndexOf('\n', offset - 1) + 1);
}

/**
 * yaml parses `networks: # note` (a comment on the line of a key whose value
 * is a block collection) as a comment before the collection's first entry,
 * and would print it on the next line. Move it to the key, where yaml prints
 * it back on the key's line.
 */
function liftKeyLineComments(doc: Document, text: string): void {
  visit(doc, {
    Pair(_, pair) {
      const { key, value } = pair;
      if (!isScalar(key) || !key.range || key.comment || !isBlock(value)) return;
      const node = value as YAMLMap | YAMLSeq;
      if (!node.commentBefore) return;
      const gap = /^[ \t]*:([ \t]+)#/.exec(lineAfter(text, key.range[1]))?.[1];
      if (gap === undefined) return;
      const [first = '', ...others] = node.commentBefore.split('\n');
      key.comment = withGap(gap, first);
      node.commentBefore = others.length ? others.join('\n') : undefined;
    },
  });
}

/**
 * A comment after the last entry is the document's, and yaml prints it after a
 * blank line. When the text has none there, make it the top collection's
 * trailing comment, which prints right after the last entry.
 */
function keepTrailingComment(doc: Document, text: string): void {
  const contents = doc.contents;
  if (!doc.comment || !isBlock(contents) || !contents?.range || doc.directives?.docEnd) return;
  const hash = text.indexOf('#', contents.range[2]);
  if (hash === -1) return;
  const lineStart = text.lastIndexOf('\n', hash - 1) + 1;
  const previousLine = text.slice(text.lastIndexOf('\n', lineStart - 2) + 1, lineStart);
  if (previousLine.trim() === '') return;
  contents.comment = joinComments(contents.comment, doc.comment);
  doc.comment = null;
}

/**
 * yaml prints a line-end comment one space after its value, so comments
 * aligned in a column would lose their alignment. The spaces before each one
 * are kept in the comment text, behind GAP, for commentString to put back.
 */
const GAP = '\u0000';

function withGap(gap: string, comment: string): string {
  return gap === ' ' || comment.includes('\n') ? comment : `${GAP}${gap}${GAP}${comment}`;
}

function recordCommentGaps(doc: Document, text: string): void {
  visit(doc, {
    Node(_, node) {
      if (!node.comment || node.comment.startsWith(GAP) || !node.range || isBlock(node)) return;
      // A block scalar's comment is on its header line, far from where its value ends.
      if (isScalar(node) && (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED')) return;
      const gap = /^([ \t]+)#/.exec(lineAfter(text, node.range[1]))?.[1];
      if (gap !== undefined) node.comment = withGap(gap, node.comment);
    },
  });
}

/** yaml's own commentString, with the spaces recorded by withGap put back. */
function commentString(comment: string): string {
  if (!comment.startsWith(GAP)) return comment.replace(/^(?!$)(?: $)?/gm, '#');
  const [, gap = ' ', rest = ''] = comment.split(GAP);
  // yaml adds one space itself.
  return `${gap.slice(1)}#${rest}`;
}

function lineAfter(text: string, offset: number): string {
  const end = text.indexOf('\n', offset);
  return text.slice(offset, end === -1 ? undefined : end);
}

/** The indentation and flow padding the existing text uses, so untouched lines print as they were. */
function inferStyle(doc: Document, text: string): ToStringOptions {
  const style: ToStringOptions = {};
  let padded = 0;
  let tight = 0;
  visit(doc, {
    Pair(_, pair) {
      const { key, value } = pair;
      if (!isScalar(key) || !key.range || !isBlock(value)) return;
      const node = value as YAMLMap | YAMLSeq;
      if (!node.range || node.anchor || node.tag) return;
      if (!text.slice(key.range[0], node.range[0]).includes('\n')) return;
      const step = column(text, node.range[0]) - column(text, key.range[0]);
      if (isMap(node) && style.indent === undefined && step > 0) style.indent = step;
      if (isSeq(node) && style.indentSeq === undefined) style.indentSeq = step > 0;
    },
    Collection(_, node) {
      if (!node.flow || !node.items.length || !node.range) return;
      const after = text[node.range[0] + 1];
      if (after === ' ') padded++;
      else if (after !== '\n' && after !== '\r') tight++;
    },
  });
  if (tight > padded) style.flowCollectionPadding = false;
  return style;
}
