// test_qdrant_js.mjs: fanns against the official Qdrant JavaScript REST client.
//
// Usage: node test_qdrant_js.mjs http://127.0.0.1:PORT
//
// Drives a running fannsd through @qdrant/js-client-rest (version pinned in package.json) the
// way an application would: create a collection, upsert in both body forms, create a payload
// index, search and query with a filter, retrieve, scroll, count, set payload, delete by filter
// and by ids, delete the collection.  Results are checked against values computed here.  The
// client's default server-version check is left on; any warning it prints fails the test.

import assert from 'node:assert/strict';
import { QdrantClient } from '@qdrant/js-client-rest';

const url = process.argv[2];
if (!url) {
  console.error('usage: node test_qdrant_js.mjs http://127.0.0.1:PORT');
  process.exit(2);
}

const warnings = [];
const origWarn = console.warn;
console.warn = (...args) => {
  warnings.push(args.join(' '));
  origWarn(...args);
};

const NAME = 'js_compat';
const DIM = 4;
const UUIDS = [
  '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b',
  'a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d',
];
const cities = ['Berlin', 'London', 'Paris'];

function vec(i) {
  return [Math.sin(i + 1), Math.cos(i * 0.7), ((i % 5) - 2) / 4, (i % 3) * 0.5 - 0.25];
}
function dot(a, b) {
  return a.reduce((s, x, k) => s + x * b[k], 0);
}
function f32(v) {
  return Array.from(new Float32Array(v));
}

// Points 0..39 (points form) and two UUID points (batch form).
const points = [];
for (let i = 0; i < 40; i++) {
  points.push({ id: i, vector: vec(i), payload: { city: cities[i % 3], n: i, tags: [`t${i % 4}`] } });
}
const batch = {
  ids: UUIDS,
  vectors: [vec(100), vec(101)],
  payloads: [{ city: 'Berlin', n: 100, tags: ['t0'] }, { city: 'Tokyo', n: 101, tags: [] }],
};
const all = points.concat(UUIDS.map((id, k) => ({ id, vector: batch.vectors[k], payload: batch.payloads[k] })));

function bruteTop(q, pred, k, offset = 0) {
  return all
    .filter((p) => pred(p.payload))
    .map((p) => ({ id: p.id, score: dot(f32(p.vector), f32(q)) }))
    .sort((a, b) => b.score - a.score)
    .slice(offset, offset + k);
}

function checkHits(hits, want, what) {
  assert.deepEqual(hits.map((h) => h.id), want.map((w) => w.id), `${what}: ids`);
  hits.forEach((h, k) => {
    assert.ok(Math.abs(h.score - want[k].score) < 1e-4, `${what}: score of ${h.id} ${h.score} vs ${want[k].score}`);
    assert.equal(typeof h.version, 'number', `${what}: version`);
  });
}

async function expectStatus(promise, status, what) {
  try {
    await promise;
  } catch (e) {
    const got = e.status ?? e.response?.status;
    assert.equal(got, status, `${what}: expected HTTP ${status}, got ${got} (${e})`);
    return e;
  }
  assert.fail(`${what}: expected an error with HTTP ${status}`);
}

async function main() {
  const client = new QdrantClient({ url });

  const version = await client.versionInfo();
  assert.match(version.version, /^1\.\d+/, 'server version');

  if ((await client.collectionExists(NAME)).exists) await client.deleteCollection(NAME);
  assert.equal(await client.createCollection(NAME, { vectors: { size: DIM, distance: 'Dot' } }), true);
  assert.deepEqual(await client.collectionExists(NAME), { exists: true });
  await expectStatus(client.createCollection(NAME, { vectors: { size: DIM, distance: 'Dot' } }), 409, 'duplicate');
  const { collections } = await client.getCollections();
  assert.ok(collections.some((c) => c.name === NAME), 'getCollections lists the collection');

  let info = await client.getCollection(NAME);
  assert.equal(info.status, 'green');
  assert.equal(info.points_count, 0);
  assert.equal(info.config.params.vectors.size, DIM);
  assert.equal(info.config.params.vectors.distance, 'Dot');

  let res = await client.upsert(NAME, { wait: true, points });
  assert.equal(res.status, 'completed');
  assert.equal(typeof res.operation_id, 'number');
  res = await client.upsert(NAME, { wait: true, batch });
  assert.equal(res.status, 'completed');

  res = await client.createPayloadIndex(NAME, { field_name: 'city', field_schema: 'keyword', wait: true });
  assert.equal(res.status, 'completed');
  info = await client.getCollection(NAME);
  assert.equal(info.points_count, all.length);
  assert.equal(info.payload_schema.city?.data_type, 'keyword', 'payload_schema shows the index');

  // search (legacy endpoint) with a filter
  const q = [0.3, -0.2, 0.9, 0.1];
  const berlin = { must: [{ key: 'city', match: { value: 'Berlin' } }] };
  let hits = await client.search(NAME, { vector: q, limit: 5, filter: berlin });
  checkHits(hits, bruteTop(q, (p) => p.city === 'Berlin', 5), 'search with filter');
  for (const h of hits) assert.equal(h.payload.city, 'Berlin', 'search returns payloads by default');
  hits = await client.search(NAME, { vector: q, limit: 3, offset: 2 });
  checkHits(hits, bruteTop(q, () => true, 3, 2), 'search with offset');

  // query (universal endpoint) with a filter and with nearest
  const rangeFilter = { must: [{ key: 'n', range: { gte: 10, lt: 30 } }], must_not: [{ key: 'tags', match: { any: ['t1'] } }] };
  const rangePred = (p) => p.n >= 10 && p.n < 30 && !p.tags.includes('t1');
  let qr = await client.query(NAME, { query: q, filter: rangeFilter, limit: 6, with_payload: true });
  checkHits(qr.points, bruteTop(q, rangePred, 6), 'query with filter');
  for (const h of qr.points) assert.ok(rangePred(h.payload), 'query hit passes the filter');
  qr = await client.query(NAME, { query: { nearest: q }, limit: 4, params: { exact: true } });
  checkHits(qr.points, bruteTop(q, () => true, 4), 'query nearest exact');

  // retrieve
  const recs = await client.retrieve(NAME, { ids: [7, UUIDS[1], 999], with_payload: true, with_vector: true });
  const byId = Object.fromEntries(recs.map((r) => [r.id, r]));
  assert.deepEqual(Object.keys(byId).sort(), ['7', UUIDS[1]].sort(), 'retrieve skips missing ids');
  assert.deepEqual(byId[7].payload, points[7].payload);
  byId[7].vector.forEach((x, k) => assert.ok(Math.abs(x - points[7].vector[k]) < 1e-6, 'retrieved vector'));

  // scroll across pages
  const seen = [];
  let offset;
  for (let guard = 0; guard < 100; guard++) {
    const page = await client.scroll(NAME, { limit: 7, offset, with_payload: false });
    seen.push(...page.points.map((p) => p.id));
    offset = page.next_page_offset;
    if (offset === null || offset === undefined) break;
  }
  const wantOrder = [...Array(40).keys(), ...[...UUIDS].sort()];
  assert.deepEqual(seen, wantOrder, 'scroll visits every point once, in id order');

  // count
  assert.deepEqual(await client.count(NAME, { exact: true }), { count: all.length });
  assert.deepEqual(await client.count(NAME, { filter: berlin, exact: true }),
    { count: all.filter((p) => p.payload.city === 'Berlin').length });

  // payload update
  res = await client.setPayload(NAME, { payload: { flag: true }, points: [1, 2], wait: true });
  assert.equal(res.status, 'completed');
  assert.deepEqual(await client.count(NAME, { filter: { must: [{ key: 'flag', match: { value: true } }] } }), { count: 2 });
  const p1 = await client.retrieve(NAME, { ids: [1] });
  assert.deepEqual(p1[0].payload, { ...points[1].payload, flag: true });

  // delete by filter, then by ids
  res = await client.delete(NAME, { filter: berlin, wait: true });
  assert.equal(res.status, 'completed');
  const left = all.filter((p) => p.payload.city !== 'Berlin');
  assert.deepEqual(await client.count(NAME, { exact: true }), { count: left.length });
  hits = await client.search(NAME, { vector: q, limit: 50 });
  assert.ok(hits.every((h) => h.payload.city !== 'Berlin'), 'deleted points are not found');
  res = await client.delete(NAME, { points: [1, UUIDS[1]], wait: true });
  assert.equal(res.status, 'completed');
  assert.deepEqual(await client.count(NAME, { exact: true }), { count: left.length - 2 });

  await expectStatus(client.getCollection('js_no_such_collection'), 404, 'unknown collection');

  assert.equal(await client.deleteCollection(NAME), true);
  assert.deepEqual(await client.collectionExists(NAME), { exists: false });

  // Let the constructor's background version check finish, then demand silence from it.
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(warnings, [], 'the client printed warnings (version check?)');
  console.log('test_qdrant_js: OK');
}

main().catch((e) => {
  console.error('test_qdrant_js: FAILED');
  console.error(e);
  if (e?.data) console.error('response body:', JSON.stringify(e.data));
  process.exit(1);
});
