#!/usr/bin/env node
// s3db-roundtrip.mjs - s3db.js itself (its MemoryClient, Database and
// resources) reads what s3mem writes and writes what s3mem reads back
// (DESIGN.md section 6). Run by tests/bats/compat.bats; usable by hand:
//
//   S3DBJS_DIR=/path/to/node_modules/s3db.js node s3db-roundtrip.mjs COMMAND ...
//
// Commands (every path absolute or relative to the current directory):
//   check-save SAVE [--expect FILE] [--same-as SAVE2]
//       MemoryClient.loadFromDisk(SAVE), then every object as s3db.js returns
//       it (getObject, listObjects, getStats) is checked against the same
//       file parsed here independently: body bytes, etag = MD5 of the body,
//       size, contentLength, contentType, contentEncoding, metadata,
//       lastModified; saveToDisk must write it back unchanged. FILE adds
//       expectations: {"bucket", "exact": true, "objects": {KEY: {"bodyText" |
//       "bodyBase64" | "bodyFile", "metadata" (as getObject decodes it),
//       "rawMetadata" (as stored), "contentType", "contentEncoding", "etag",
//       "lastModified"}}}; with exact (the default) the keys must be those.
//       --same-as SAVE2: the same expectations taken from another save file
//       (keys, bodies, stored metadata, types, encodings, etags, dates).
//   check-backup DIR [--expect FILE] [--reference SAVE]
//       DIR is an exportBackup directory (s3db.json + NAME.jsonl[.gz]): its
//       manifest must agree with its files, read as importBackup reads them;
//       MemoryClient.importBackup(DIR) must import every line without an
//       error, and each object it writes must hold the line's fields. With
//       SAVE, s3db.js loads SAVE and exports it itself (partition references
//       dropped first: s3db.js 12.4 wrongly exported them as records), and
//       both backups must hold the same records, and import to the same
//       objects. FILE: {"compressed", "resources": {NAME: {"count",
//       "records": {ID: {FIELD: VALUE}}}}}.
//   check-records SAVE REFERENCE [--expect FILE]
//       A Database over a MemoryClient loaded from SAVE must list and get the
//       same records, field for field, as one over REFERENCE (both save
//       files). FILE: {"resources": {NAME: {ID: {FIELD: VALUE}}}}.
//   write-save OUT
//       Builds a store with putObject (text, non-ASCII key and metadata,
//       binary, gzip content encoding, a marker) and a Database resource with
//       a partition, and saves it with saveToDisk(OUT).
//
// Prints "ok: ..." lines, and "MISMATCH ..." lines then exits 1 when what
// s3db.js sees differs; exits 2 on a usage error or when s3db.js cannot be
// loaded.

import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

// ---- reporting ----------------------------------------------------------------

const problems = [];

function show(value) {
  let text;
  if (Buffer.isBuffer(value)) {
    text = `<${value.length} bytes, md5 ${md5(value)}>`;
  } else if (value === undefined) {
    text = 'undefined';
  } else {
    text = JSON.stringify(value);
  }
  return text.length > 300 ? `${text.slice(0, 300)}... (${text.length} chars)` : text;
}

function mismatch(where, what, want, got) {
  problems.push(`MISMATCH ${where}: ${what}: s3db.js expected/has ${show(want)}, got ${show(got)}`);
}

function problem(text) {
  problems.push(`MISMATCH ${text}`);
}

// ok TEXT [MARK]: reports a check done; with MARK (problems.length when
// the check began) it says so only when the check found nothing.
function ok(text, mark) {
  if (mark !== undefined && problems.length > mark) console.log(`checked, with mismatches (below): ${text}`);
  else console.log(`ok: ${text}`);
}

function finish(command) {
  if (problems.length) {
    for (const p of problems) console.log(p);
    console.log(`FAILED: ${command}: ${problems.length} mismatch(es)`);
    process.exit(1);
  }
  console.log(`PASSED: ${command}`);
}

function usage(text) {
  console.error(`s3db-roundtrip: ${text}`);
  console.error('usage: node s3db-roundtrip.mjs check-save SAVE [--expect FILE] [--same-as SAVE2]');
  console.error('       node s3db-roundtrip.mjs check-backup DIR [--expect FILE] [--reference SAVE]');
  console.error('       node s3db-roundtrip.mjs check-records SAVE REFERENCE [--expect FILE]');
  console.error('       node s3db-roundtrip.mjs write-save OUT');
  process.exit(2);
}

// ---- small helpers ------------------------------------------------------------

function md5(buffer) {
  return createHash('md5').update(buffer).digest('hex');
}

// canonical: JSON text with object keys sorted, to compare values.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value === undefined ? null : value);
}

function same(a, b) {
  return canonical(a) === canonical(b);
}

function readJson(path, what) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    usage(`cannot read ${what} ${path}: ${err.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    problem(`${what} ${path} is not JSON (s3db.js's JSON.parse refuses it too): ${err.message}`);
    finish(process.argv[2]);
  }
  return undefined;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

async function bodyOf(response) {
  const chunks = [];
  if (response.Body) {
    for await (const chunk of response.Body) chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

// expectedBody: the body an expectation names, or undefined when it names none.
function expectedBody(e) {
  if (e.bodyBase64 !== undefined) return Buffer.from(e.bodyBase64, 'base64');
  if (e.bodyText !== undefined) return Buffer.from(e.bodyText, 'utf8');
  if (e.bodyFile !== undefined) return readFileSync(e.bodyFile);
  return undefined;
}

function parseArgs(argv, positional, options) {
  const out = { args: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const name = a.slice(2);
      if (!options.includes(name) || i + 1 >= argv.length) usage(`unknown option or missing value: ${a}`);
      out[name] = argv[++i];
    } else {
      out.args.push(a);
    }
  }
  if (out.args.length !== positional) usage(`expected ${positional} argument(s), got ${out.args.length}`);
  return out;
}

// ---- loading s3db.js ----------------------------------------------------------

async function loadS3db() {
  const dir = process.env.S3DBJS_DIR;
  if (!dir) usage('S3DBJS_DIR must name the installed s3db.js package directory (.../node_modules/s3db.js)');
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  } catch (err) {
    usage(`no s3db.js package in ${dir}: ${err.message}`);
  }
  const exp = pkg.exports && pkg.exports['.'];
  const entry = (exp && (exp.import || exp.default)) || pkg.module || pkg.main;
  let mod;
  try {
    mod = await import(pathToFileURL(resolve(dir, entry)).href);
  } catch (err) {
    console.error(`s3db-roundtrip: cannot import s3db.js from ${dir}: ${err.stack || err}`);
    process.exit(2);
  }
  if (typeof mod.MemoryClient !== 'function' || typeof mod.Database !== 'function') {
    console.error(`s3db-roundtrip: s3db.js ${pkg.version} in ${dir} exports no MemoryClient/Database`);
    process.exit(2);
  }
  for (const m of ['loadFromDisk', 'saveToDisk', 'exportBackup', 'importBackup', 'getObject', 'listObjects', 'getStats']) {
    if (typeof mod.MemoryClient.prototype[m] !== 'function') {
      console.error(`s3db-roundtrip: s3db.js ${pkg.version}: MemoryClient has no ${m}()`);
      process.exit(2);
    }
  }
  console.log(`s3db.js ${pkg.version} (${dir})`);
  return mod;
}

// Database with a quiet MemoryClient loaded from a save file.
async function openDatabase(s3db, savePath, what) {
  const client = new s3db.MemoryClient({ bucket: 'compat' });
  try {
    await client.loadFromDisk(savePath);
  } catch (err) {
    problem(`${what}: s3db.js loadFromDisk(${savePath}) refused it: ${err.message}`);
    return null;
  }
  const db = new s3db.Database({ client, verbose: false });
  try {
    await db.connect();
  } catch (err) {
    problem(`${what}: s3db.js Database.connect() over ${savePath} failed: ${err.message}`);
    return null;
  }
  return db;
}

// userFields: a record as a resource returns it, less s3db.js's own
// "_" fields (etag, lastModified, version: they say where it came from).
function userFields(record) {
  const out = {};
  for (const [k, v] of Object.entries(record || {})) {
    if (!k.startsWith('_')) out[k] = v instanceof Date ? v.toISOString() : v;
  }
  return out;
}

// ---- check-save ---------------------------------------------------------------

async function listAllKeys(client) {
  const keys = [];
  let token = null;
  for (let page = 0; page < 100000; page++) {
    const res = await client.listObjects({ prefix: '', maxKeys: 1000, continuationToken: token });
    for (const c of res.Contents) keys.push(c.Key);
    if (!res.IsTruncated) break;
    token = res.NextContinuationToken;
  }
  return keys;
}

async function checkSave(s3db, argv) {
  const opts = parseArgs(argv, 1, ['expect', 'same-as']);
  const savePath = resolve(opts.args[0]);
  const where = `save file ${savePath}`;
  if (opts.expect && opts['same-as']) usage('give --expect or --same-as, not both');
  let expect = opts.expect ? readJson(resolve(opts.expect), 'expectations') : null;
  if (opts['same-as']) {
    // Expectations from another save file, as s3db.js's restore() keeps it.
    const other = readJson(resolve(opts['same-as']), 'save file (--same-as)');
    const objects = {};
    for (const [key, o] of Object.entries(other.objects || {})) {
      objects[key] = {
        bodyBase64: o.body,
        rawMetadata: o.metadata,
        contentType: o.contentType,
        contentEncoding: o.contentEncoding ?? null,
        etag: o.etag,
        lastModified: o.lastModified
      };
    }
    expect = { exact: true, objects }; // the bucket is the saver's own name
  }

  // The file as this script reads it, independently of s3db.js.
  const raw = readJson(savePath, 'save file');
  if (!isPlainObject(raw) || !isPlainObject(raw.objects)) {
    problem(`${where}: no "objects" object (s3db.js restore() needs snapshot.objects)`);
    return finish('check-save');
  }
  const rawKeys = Object.keys(raw.objects);
  if (typeof raw.bucket !== 'string') mismatch(where, '"bucket" type', 'a string', raw.bucket);
  if (typeof raw.timestamp !== 'string' || Number.isNaN(Date.parse(raw.timestamp))) {
    mismatch(where, '"timestamp"', 'an ISO 8601 date string', raw.timestamp);
  }
  if (raw.objectCount !== rawKeys.length) mismatch(where, '"objectCount"', rawKeys.length, raw.objectCount);

  const client = new s3db.MemoryClient({ bucket: raw.bucket || 's3mem' });
  let snapshot;
  try {
    snapshot = await client.loadFromDisk(savePath);
  } catch (err) {
    problem(`${where}: s3db.js MemoryClient.loadFromDisk refused it: ${err.message}`);
    return finish('check-save');
  }
  ok(`s3db.js loadFromDisk read ${where} (${rawKeys.length} objects, bucket ${JSON.stringify(snapshot.bucket)})`);
  const markObjects = problems.length;

  const stats = client.getStats();
  if (stats.objectCount !== rawKeys.length) mismatch(where, 'getStats().objectCount', rawKeys.length, stats.objectCount);
  const sortedRaw = [...rawKeys].sort();
  if (!same(stats.keys, sortedRaw)) mismatch(where, 'getStats().keys', sortedRaw, stats.keys);
  const listed = await listAllKeys(client);
  if (!same(listed, sortedRaw)) mismatch(where, 'listObjects() keys', sortedRaw, listed);
  let totalSize = 0;

  const seen = new Map(); // key -> what s3db.js returned
  for (const key of rawKeys) {
    const o = raw.objects[key];
    const at = `${where} object ${JSON.stringify(key)}`;
    if (!isPlainObject(o)) {
      mismatch(at, 'entry type', 'an object', o);
      continue;
    }
    if (typeof o.body !== 'string') {
      mismatch(at, '"body" type', 'a base64 string', o.body);
      continue;
    }
    const body = Buffer.from(o.body, 'base64');
    if (body.toString('base64') !== o.body) mismatch(at, '"body"', 'canonical base64 (as Buffer.toString("base64") writes it)', o.body);
    if (!isPlainObject(o.metadata)) {
      mismatch(at, '"metadata" type', 'an object', o.metadata);
    } else {
      for (const [k, v] of Object.entries(o.metadata)) {
        if (typeof v !== 'string') mismatch(at, `metadata ${JSON.stringify(k)} type`, 'a string (as S3 and s3db.js keep it)', v);
      }
    }
    if (typeof o.contentType !== 'string' || o.contentType === '') mismatch(at, '"contentType"', 'a non-empty string', o.contentType);
    if (o.contentEncoding !== undefined && o.contentEncoding !== null && typeof o.contentEncoding !== 'string') {
      mismatch(at, '"contentEncoding"', 'a string or absent', o.contentEncoding);
    }
    if (o.size !== body.length) mismatch(at, '"size" (s3db.js returns it as ContentLength)', body.length, o.size);
    if (o.contentLength !== body.length) mismatch(at, '"contentLength"', body.length, o.contentLength);
    if (typeof o.lastModified !== 'string' || Number.isNaN(Date.parse(o.lastModified))) {
      mismatch(at, '"lastModified"', 'an ISO 8601 date string', o.lastModified);
    }

    let got;
    try {
      got = await client.getObject(key);
    } catch (err) {
      problem(`${at}: s3db.js getObject failed: ${err.message}`);
      continue;
    }
    const gotBody = await bodyOf(got);
    totalSize += gotBody.length;
    if (!gotBody.equals(body)) mismatch(at, 'getObject body', body, gotBody);
    if (got.ETag !== md5(body)) mismatch(at, 'getObject ETag (MD5 of the body)', md5(body), got.ETag);
    if (got.ContentLength !== body.length) mismatch(at, 'getObject ContentLength', body.length, got.ContentLength);
    if (got.ContentType !== o.contentType) mismatch(at, 'getObject ContentType', o.contentType, got.ContentType);
    if ((got.ContentEncoding ?? null) !== (o.contentEncoding ?? null)) {
      mismatch(at, 'getObject ContentEncoding', o.contentEncoding, got.ContentEncoding);
    }
    if (!(got.LastModified instanceof Date) || Number.isNaN(got.LastModified.getTime())) {
      mismatch(at, 'getObject LastModified', 'a valid Date', String(got.LastModified));
    } else if (got.LastModified.getTime() !== Date.parse(o.lastModified)) {
      mismatch(at, 'getObject LastModified', o.lastModified, got.LastModified.toISOString());
    }
    seen.set(key, { body: gotBody, got });
  }
  if (stats.totalSize !== totalSize) mismatch(where, 'getStats().totalSize', totalSize, stats.totalSize);

  // s3db.js writes back what it read (s3mem's own fields aside).
  const tmp = mkdtempSync(join(tmpdir(), 's3db-roundtrip-'));
  try {
    const back = join(tmp, 'back.json');
    await client.saveToDisk(back);
    const again = JSON.parse(readFileSync(back, 'utf8'));
    for (const key of rawKeys) {
      const a = raw.objects[key];
      const b = again.objects[key];
      if (!b) {
        problem(`${where}: s3db.js saveToDisk dropped ${JSON.stringify(key)}`);
        continue;
      }
      for (const f of ['body', 'metadata', 'contentType', 'etag', 'lastModified', 'size', 'contentEncoding', 'contentLength']) {
        if (!same(a[f], b[f])) mismatch(`${where} object ${JSON.stringify(key)}`, `"${f}" after s3db.js saveToDisk`, a[f], b[f]);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  ok('every object as s3db.js returns it matches the file (body, etag, size, type, encoding, metadata, date), and saveToDisk writes it back', markObjects);
  if (expect) {
    const markExpect = problems.length;
    if (expect.bucket !== undefined && raw.bucket !== expect.bucket) mismatch(where, '"bucket"', expect.bucket, raw.bucket);
    const want = expect.objects || {};
    if (expect.exact !== false) {
      const wantKeys = Object.keys(want).sort();
      if (!same(wantKeys, sortedRaw)) {
        const missing = wantKeys.filter((k) => !(k in raw.objects));
        const extra = sortedRaw.filter((k) => !(k in want));
        problem(`${where}: keys differ: missing ${show(missing)}, unexpected ${show(extra)}`);
      }
    }
    for (const [key, e] of Object.entries(want)) {
      const at = `${where} object ${JSON.stringify(key)}`;
      const s = seen.get(key);
      if (!s) {
        if (key in raw.objects) continue; // already reported
        problem(`${at}: missing`);
        continue;
      }
      const wantBody = expectedBody(e);
      if (wantBody && !wantBody.equals(s.body)) mismatch(at, 'body', wantBody, s.body);
      if (e.etag !== undefined && s.got.ETag !== e.etag) mismatch(at, 'ETag', e.etag, s.got.ETag);
      if (e.contentType !== undefined && s.got.ContentType !== e.contentType) mismatch(at, 'ContentType', e.contentType, s.got.ContentType);
      if (e.contentEncoding !== undefined && (s.got.ContentEncoding ?? null) !== e.contentEncoding) {
        mismatch(at, 'ContentEncoding', e.contentEncoding, s.got.ContentEncoding);
      }
      if (e.metadata !== undefined && !same(s.got.Metadata, e.metadata)) mismatch(at, 'getObject Metadata (decoded)', e.metadata, s.got.Metadata);
      if (e.rawMetadata !== undefined && !same(raw.objects[key].metadata, e.rawMetadata)) {
        mismatch(at, 'stored metadata', e.rawMetadata, raw.objects[key].metadata);
      }
      if (e.lastModified !== undefined && raw.objects[key].lastModified !== e.lastModified) {
        mismatch(at, 'lastModified', e.lastModified, raw.objects[key].lastModified);
      }
    }
    ok(`${Object.keys(want).length} objects as expected${expect.exact !== false ? ', and no others' : ''}`, markExpect);
  }
  finish('check-save');
}

// ---- check-backup -------------------------------------------------------------

// readBackup: DIR's manifest and records, read as importBackup reads them.
function readBackup(dir, where) {
  const manifest = readJson(join(dir, 's3db.json'), `${where} s3db.json`);
  const files = readdirSync(dir).filter((f) => f.endsWith('.jsonl') || f.endsWith('.jsonl.gz')).sort();
  const resources = {};
  for (const file of files) {
    const name = file.replace(/\.jsonl(\.gz)?$/, '');
    let content = readFileSync(join(dir, file));
    if (file.endsWith('.gz')) {
      try {
        content = gunzipSync(content);
      } catch (err) {
        problem(`${where} ${file}: not gzip as s3db.js's gunzip reads it: ${err.message}`);
        continue;
      }
    }
    const lines = content.toString('utf8').split('\n').filter((line) => line.trim());
    const records = [];
    lines.forEach((line, i) => {
      try {
        records.push(JSON.parse(line));
      } catch (err) {
        problem(`${where} ${file} line ${i + 1}: not JSON: ${err.message}`);
      }
    });
    resources[name] = { file, records, fileSize: statSync(join(dir, file)).size };
  }
  return { manifest, files, resources };
}

// byId: the records of one resource by id, reporting duplicates and records
// with no id (s3db.js would give them a random one).
function byId(records, where) {
  const map = new Map();
  for (const r of records) {
    if (!isPlainObject(r)) {
      problem(`${where}: a record is not a JSON object: ${show(r)}`);
      continue;
    }
    const id = r.id || r._id;
    if (typeof id !== 'string' || id === '') {
      problem(`${where}: record without a string "id" (s3db.js importBackup would invent one): ${show(r)}`);
      continue;
    }
    if (map.has(id)) problem(`${where}: id ${JSON.stringify(id)} appears twice (the later line overwrites the earlier in s3db.js importBackup)`);
    map.set(id, r);
  }
  return map;
}

// importedObjects: importBackup(dir) into a fresh client, then every object
// it wrote: key -> {metadata (decoded), body}.
async function importedObjects(s3db, dir, where) {
  const client = new s3db.MemoryClient({ bucket: 'import' });
  let stats;
  try {
    stats = await client.importBackup(dir);
  } catch (err) {
    problem(`${where}: s3db.js importBackup threw: ${err.message}`);
    return null;
  }
  for (const e of stats.errors || []) {
    problem(`${where}: s3db.js importBackup refused a line of ${e.resource}: ${e.error}: ${show(e.line)}`);
  }
  const objects = new Map();
  for (const key of client.getStats().keys) {
    const got = await client.getObject(key);
    objects.set(key, { metadata: got.Metadata, body: await bodyOf(got) });
  }
  return { stats, objects };
}

async function checkBackup(s3db, argv) {
  const opts = parseArgs(argv, 1, ['expect', 'reference']);
  const dir = resolve(opts.args[0]);
  const where = `backup ${dir}`;
  const expect = opts.expect ? readJson(resolve(opts.expect), 'expectations') : null;
  const markManifest = problems.length;
  const { manifest, files, resources } = readBackup(dir, where);

  // The manifest, as exportBackup writes it.
  if (!isPlainObject(manifest)) {
    problem(`${where}: s3db.json is not a JSON object`);
    return finish('check-backup');
  }
  if (manifest.version !== '1.0') mismatch(where, 's3db.json "version"', '1.0', manifest.version);
  if (typeof manifest.compressed !== 'boolean') mismatch(where, 's3db.json "compressed"', 'true or false', manifest.compressed);
  if (typeof manifest.bucket !== 'string') mismatch(where, 's3db.json "bucket"', 'a string', manifest.bucket);
  if (typeof manifest.keyPrefix !== 'string') mismatch(where, 's3db.json "keyPrefix"', 'a string', manifest.keyPrefix);
  if (typeof manifest.timestamp !== 'string' || Number.isNaN(Date.parse(manifest.timestamp))) {
    mismatch(where, 's3db.json "timestamp"', 'an ISO 8601 date', manifest.timestamp);
  }
  const declared = isPlainObject(manifest.resources) ? manifest.resources : {};
  if (!isPlainObject(manifest.resources)) mismatch(where, 's3db.json "resources"', 'an object', manifest.resources);
  let totalRecords = 0;
  let totalSize = 0;
  for (const file of files) {
    const gz = file.endsWith('.gz');
    if (gz !== manifest.compressed) mismatch(where, `file ${file}`, manifest.compressed ? 'NAME.jsonl.gz (compressed: true)' : 'NAME.jsonl (compressed: false)', file);
  }
  for (const name of new Set([...Object.keys(declared), ...Object.keys(resources)])) {
    const r = resources[name];
    const d = declared[name];
    if (!r) {
      problem(`${where}: s3db.json lists resource ${JSON.stringify(name)} but there is no ${name}.jsonl[.gz]`);
      continue;
    }
    if (!d) {
      problem(`${where}: ${r.file} has no entry in s3db.json "resources"`);
      continue;
    }
    const st = d.stats || {};
    if (st.recordCount !== r.records.length) mismatch(where, `s3db.json resources.${name}.stats.recordCount`, r.records.length, st.recordCount);
    if (st.fileSize !== r.fileSize) mismatch(where, `s3db.json resources.${name}.stats.fileSize (bytes of ${r.file})`, r.fileSize, st.fileSize);
    totalRecords += r.records.length;
    totalSize += r.fileSize;
  }
  if (manifest.totalRecords !== totalRecords) mismatch(where, 's3db.json "totalRecords"', totalRecords, manifest.totalRecords);
  if (manifest.totalSize !== totalSize) mismatch(where, 's3db.json "totalSize"', totalSize, manifest.totalSize);
  ok(`${where}: s3db.json agrees with ${files.length} file(s), ${totalRecords} records`, markManifest);
  const markImport = problems.length;

  // importBackup, and what it wrote.
  const mine = await importedObjects(s3db, dir, where);
  if (!mine) return finish('check-backup');
  if (mine.stats.recordsImported !== totalRecords) mismatch(where, 'importBackup recordsImported', totalRecords, mine.stats.recordsImported);
  if (mine.stats.resourcesImported !== files.length) mismatch(where, 'importBackup resourcesImported', files.length, mine.stats.resourcesImported);
  const imported = {}; // name -> id -> {key, record}
  for (const [key, o] of mine.objects) {
    const m = key.match(/^resource=([^/]+)\/(?:.*\/)?id=([^/]+)$/);
    if (!m) {
      problem(`${where}: importBackup wrote an unexpected key ${JSON.stringify(key)}`);
      continue;
    }
    const record = { ...o.metadata };
    if (o.body.length) record._body = o.body.toString('utf8');
    (imported[m[1]] ||= new Map()).set(m[2], { key, record });
  }
  let keyShape = null;
  for (const [name, r] of Object.entries(resources)) {
    const ids = byId(r.records, `${where} ${r.file}`);
    const got = imported[name] || new Map();
    if (got.size !== ids.size) mismatch(where, `records of ${name} after importBackup`, ids.size, got.size);
    for (const [id, rec] of ids) {
      const g = got.get(id);
      if (!g) {
        problem(`${where}: ${name} record ${JSON.stringify(id)} is missing after importBackup`);
        continue;
      }
      keyShape ||= g.key.replace(/^resource=[^/]+\//, 'resource=NAME/').replace(/id=[^/]+$/, 'id=ID');
      const { id: _a, _id: _b, ...want } = rec;
      for (const [k, v] of Object.entries(want)) want[k] = typeof v === 'string' ? v : String(v);
      if (!same(g.record, want)) mismatch(`${where} ${name} ${JSON.stringify(id)}`, 'record after importBackup (metadata + _body)', want, g.record);
    }
  }
  ok(`s3db.js importBackup read ${mine.stats.recordsImported} records of ${mine.stats.resourcesImported} resource(s) into ${keyShape || 'no key'}, each with its fields`, markImport);

  if (expect) {
    const markExpect = problems.length;
    if (expect.compressed !== undefined && manifest.compressed !== expect.compressed) mismatch(where, 's3db.json "compressed"', expect.compressed, manifest.compressed);
    for (const [name, e] of Object.entries(expect.resources || {})) {
      const got = imported[name] || new Map();
      if (e.count !== undefined && got.size !== e.count) mismatch(where, `records of ${name} imported by s3db.js`, e.count, got.size);
      for (const [id, fields] of Object.entries(e.records || {})) {
        const g = got.get(id);
        if (!g) {
          problem(`${where}: expected ${name} record ${JSON.stringify(id)}, s3db.js imported none`);
          continue;
        }
        for (const [k, v] of Object.entries(fields)) {
          if (!same(g.record[k], v)) mismatch(`${where} ${name} ${JSON.stringify(id)}`, `field ${JSON.stringify(k)}`, v, g.record[k]);
        }
      }
    }
    if (expect.resources) {
      const names = Object.keys(resources).sort();
      const wantNames = Object.keys(expect.resources).sort();
      if (!same(names, wantNames)) mismatch(where, 'resources in the backup', wantNames, names);
    }
    ok('the expected resources, record counts and fields', markExpect);
  }

  if (opts.reference) {
    // s3db.js exports the reference store itself; both must say the same.
    const refPath = resolve(opts.reference);
    const markRef = problems.length;
    const client = new s3db.MemoryClient({ bucket: manifest.bucket || 's3db' });
    await client.loadFromDisk(refPath);
    let dropped = 0;
    for (const key of client.getStats().keys) {
      if (/^resource=[^/]+\/partition=/.test(key)) {
        await client.deleteObject(key);
        dropped++;
      }
    }
    const tmp = mkdtempSync(join(tmpdir(), 's3db-roundtrip-'));
    try {
      const refDir = join(tmp, 'ref');
      const names = Object.keys(resources);
      await client.exportBackup(refDir, { compress: manifest.compressed, resources: names.length ? names : undefined });
      const ref = readBackup(refDir, `s3db.js's export of ${refPath}`);
      const refNames = Object.keys(ref.resources).sort();
      if (!same(Object.keys(resources).sort(), refNames)) mismatch(where, 'resources (vs s3db.js\'s own export)', refNames, Object.keys(resources).sort());
      for (const [name, r] of Object.entries(ref.resources)) {
        const want = byId(r.records, `s3db.js export ${r.file}`);
        const got = byId((resources[name] || { records: [] }).records, `${where} ${name}`);
        for (const [id, rec] of want) {
          if (!got.has(id)) problem(`${where}: ${name} record ${JSON.stringify(id)} is in s3db.js's own export, not in this one`);
          else if (!same(got.get(id), rec)) mismatch(`${where} ${name} ${JSON.stringify(id)}`, 'record (vs s3db.js\'s own export)', rec, got.get(id));
        }
        for (const id of got.keys()) {
          if (!want.has(id)) problem(`${where}: ${name} record ${JSON.stringify(id)} is not in s3db.js's own export`);
        }
        const st = (ref.manifest.resources[name] || {}).stats || {};
        const mineSt = (declared[name] || {}).stats || {};
        if (st.recordCount !== mineSt.recordCount) mismatch(where, `s3db.json resources.${name}.stats.recordCount (vs s3db.js's export)`, st.recordCount, mineSt.recordCount);
      }
      const theirs = await importedObjects(s3db, refDir, `s3db.js's export of ${refPath}`);
      if (theirs) {
        const a = [...mine.objects.keys()].sort();
        const b = [...theirs.objects.keys()].sort();
        if (!same(a, b)) mismatch(where, 'keys importBackup writes (vs s3db.js\'s export)', b, a);
        for (const [key, o] of theirs.objects) {
          const m = mine.objects.get(key);
          if (m && (!same(m.metadata, o.metadata) || !m.body.equals(o.body))) {
            mismatch(`${where} ${JSON.stringify(key)}`, 'object importBackup writes (vs s3db.js\'s export)', { metadata: o.metadata, body: o.body.toString('utf8') }, { metadata: m.metadata, body: m.body.toString('utf8') });
          }
        }
      }
      ok(`same records as s3db.js's own exportBackup of ${refPath}${dropped ? ` (less ${dropped} partition references)` : ''}, imported to the same objects`, markRef);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  finish('check-backup');
}

// ---- check-records ------------------------------------------------------------

async function checkRecords(s3db, argv) {
  const opts = parseArgs(argv, 2, ['expect']);
  const savePath = resolve(opts.args[0]);
  const refPath = resolve(opts.args[1]);
  const expect = opts.expect ? readJson(resolve(opts.expect), 'expectations') : null;
  const where = `records in ${savePath}`;
  const db = await openDatabase(s3db, savePath, 'save file');
  const ref = await openDatabase(s3db, refPath, 'reference');
  if (!db || !ref) return finish('check-records');

  const names = Object.keys(ref.resources).sort();
  const gotNames = Object.keys(db.resources).sort();
  if (!same(gotNames, names)) mismatch(where, 'resources Database.connect() finds', names, gotNames);
  const markRecords = problems.length;
  let count = 0;
  let partitionLists = 0;
  for (const name of names) {
    const want = ref.resources[name];
    const have = db.resources[name];
    if (!have) continue;
    const wantIds = (await want.listIds()).sort();
    let gotIds;
    try {
      gotIds = (await have.listIds()).sort();
    } catch (err) {
      problem(`${where}: resource ${name}: listIds() failed: ${err.message}`);
      continue;
    }
    if (!same(gotIds, wantIds)) mismatch(where, `ids of resource ${name} (listIds)`, wantIds, gotIds);
    for (const id of wantIds) {
      let got;
      try {
        got = await have.get(id);
      } catch (err) {
        problem(`${where}: ${name}.get(${JSON.stringify(id)}) failed: ${err.message}`);
        continue;
      }
      const w = userFields(await want.get(id));
      if (!same(userFields(got), w)) mismatch(`${where} ${name} ${JSON.stringify(id)}`, 'record as resource.get() returns it', w, userFields(got));
      count++;
    }
    // Partition listings (they read the partition reference keys).
    const partitions = (want.config && want.config.partitions) || {};
    for (const [partition, def] of Object.entries(partitions)) {
      const fields = Object.keys((def && def.fields) || {});
      const combos = new Map();
      for (const id of wantIds) {
        const r = await want.get(id);
        const values = Object.fromEntries(fields.map((f) => [f, r[f]]));
        combos.set(canonical(values), values);
      }
      for (const values of combos.values()) {
        const w = (await want.listIds({ partition, partitionValues: values })).sort();
        let g;
        try {
          g = (await have.listIds({ partition, partitionValues: values })).sort();
        } catch (err) {
          problem(`${where}: ${name}.listIds(partition ${partition} ${show(values)}) failed: ${err.message}`);
          continue;
        }
        if (!same(g, w)) mismatch(where, `ids of ${name} in partition ${partition} ${show(values)}`, w, g);
        partitionLists++;
      }
    }
  }
  ok(`s3db.js resources read ${count} records of ${names.length} resource(s) as in ${refPath}` +
     (partitionLists ? `, and ${partitionLists} partition listings` : ''), markRecords);
  if (expect) {
    const markExpect = problems.length;
    for (const [name, recs] of Object.entries(expect.resources || {})) {
      for (const [id, fields] of Object.entries(recs)) {
        let got;
        try {
          got = db.resources[name] ? await db.resources[name].get(id) : undefined;
        } catch (err) {
          got = undefined;
        }
        if (!got) {
          problem(`${where}: ${name}.get(${JSON.stringify(id)}) found no record`);
          continue;
        }
        for (const [k, v] of Object.entries(fields)) {
          if (!same(got[k], v)) mismatch(`${where} ${name} ${JSON.stringify(id)}`, `field ${JSON.stringify(k)}`, v, got[k]);
        }
      }
    }
    ok('the expected record fields', markExpect);
  }
  finish('check-records');
}

// ---- write-save ---------------------------------------------------------------

// A deterministic binary body: every byte value, then pseudo-random bytes.
function binaryBody(size) {
  const out = Buffer.alloc(size);
  let block = Buffer.alloc(0);
  for (let i = 0; i < size; i++) {
    if (i < 256) {
      out[i] = i;
      continue;
    }
    if (i % 16 === 0) block = createHash('md5').update(`s3mem-compat-${i}`).digest();
    out[i] = block[i % 16];
  }
  return out;
}

async function writeSave(s3db, argv) {
  const opts = parseArgs(argv, 1, []);
  const out = resolve(opts.args[0]);
  const client = new s3db.MemoryClient({ bucket: 'from-s3dbjs' });

  await client.putObject({
    key: 'notes/hello.txt',
    body: 'hello from s3db.js\n',
    contentType: 'text/plain',
    metadata: { author: 'node', lang: 'en' }
  });
  await client.putObject({
    key: 'notes/ünïcödé ✓/zoë.txt',
    body: Buffer.from('Zoë ✓\n', 'utf8'),
    contentType: 'text/plain; charset=utf-8',
    metadata: { title: 'Zoë Ünïcödé', 'Odd Name!': 'x' }
  });
  await client.putObject({
    key: 'bin/blob.bin',
    body: binaryBody(200000),
    contentType: 'application/x-compat-binary',
    metadata: {}
  });
  await client.putObject({
    key: 'gz/data.json.gz',
    body: gzipSync(Buffer.from('{"a":1}\n')),
    contentType: 'application/json',
    contentEncoding: 'gzip'
  });
  await client.putObject({ key: 'empty/', body: '' });

  const db = new s3db.Database({ client, verbose: false });
  await db.connect();
  const people = await db.createResource({
    name: 'people',
    attributes: { name: 'string|required', city: 'string|optional' },
    partitions: { byCity: { fields: { city: 'string' } } },
    asyncPartitions: false // partition references written before insert() returns
  });
  const records = {
    p1: { name: 'Zoë Ünïcödé', city: 'Zürich' },
    p2: { name: 'Bob "quoted"', city: 'Oslo' }
  };
  for (const [id, r] of Object.entries(records)) await people.insert({ id, ...r });

  await client.saveToDisk(out);
  ok(`s3db.js saveToDisk wrote ${out} (${client.getStats().objectCount} objects, ${Object.keys(records).length} people records)`);
  finish('write-save');
}

// ---- main ---------------------------------------------------------------------

const [command, ...rest] = process.argv.slice(2);
const commands = { 'check-save': checkSave, 'check-backup': checkBackup, 'check-records': checkRecords, 'write-save': writeSave };
if (!commands[command]) usage(command ? `unknown command ${command}` : 'no command');
if (command === 'check-records' && rest[1] && !existsSync(rest[1])) usage(`no reference ${rest[1]}`);
const s3db = await loadS3db();
await commands[command](s3db, rest);
// s3db.js may leave timers running; the verdict is printed.
process.exit(problems.length ? 1 : 0);
