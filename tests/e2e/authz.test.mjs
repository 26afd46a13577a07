// The OpenFGA-compatible API end to end, driven by the real @openfga/sdk
// (api_token credentials = the admin bearer token): stores, models, tuple
// writes, check, batch-check, list-objects, list-users, expand, read, read changes,
// persistence across a restart, and the auth requirement.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { CredentialsMethod, OpenFgaClient } from '@openfga/sdk';

import fsp from 'node:fs/promises';
import path from 'node:path';

import { baseConfig, makeTempDir, startAigis } from './lib.mjs';

const MODEL = {
  schema_version: '1.1',
  type_definitions: [
    { type: 'user' },
    {
      type: 'group',
      relations: { member: { this: {} } },
      metadata: { relations: { member: { directly_related_user_types: [{ type: 'user' }] } } },
    },
    {
      type: 'document',
      relations: {
        owner: { this: {} },
        viewer: { union: { child: [{ this: {} }, { computedUserset: { relation: 'owner' } }] } },
      },
      metadata: {
        relations: {
          owner: { directly_related_user_types: [{ type: 'user' }] },
          viewer: {
            directly_related_user_types: [{ type: 'user' }, { type: 'user', wildcard: {} }, { type: 'group', relation: 'member' }],
          },
        },
      },
    },
  ],
};

function client(gw, storeId, token = gw.adminToken) {
  return new OpenFgaClient({
    apiUrl: gw.adminUrl,
    storeId,
    credentials: token === null ? undefined : { method: CredentialsMethod.ApiToken, config: { token } },
    retryParams: { maxRetry: 0 },
  });
}

describe('OpenFGA API', () => {
  let gw;
  let storeId;
  let modelId;

  before(async () => {
    gw = await startAigis((dir) => baseConfig(dir));
  });
  after(async () => {
    if (gw) await gw.stop();
  });

  test('create a store, write a model, read it back', async () => {
    const fga = client(gw);
    const store = await fga.createStore({ name: 'e2e' });
    assert.match(store.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.equal(store.name, 'e2e');
    storeId = store.id;
    const list = await fga.listStores();
    assert.ok(list.stores.some((s) => s.id === storeId));
    const got = await client(gw, storeId).getStore();
    assert.equal(got.name, 'e2e');

    const w = await client(gw, storeId).writeAuthorizationModel(MODEL);
    assert.match(w.authorization_model_id, /^[0-9A-Z]{26}$/);
    modelId = w.authorization_model_id;
    const models = await client(gw, storeId).readAuthorizationModels();
    assert.equal(models.authorization_models[0].id, modelId);
    const m = await client(gw, storeId).readAuthorizationModel({ authorizationModelId: modelId });
    assert.equal(m.authorization_model.type_definitions.length, 3);
  });

  test('an invalid model is a validation error (400)', async () => {
    await assert.rejects(
      client(gw, storeId).writeAuthorizationModel({ schema_version: '1.1', type_definitions: [{ type: 'doc', relations: { viewer: { computedUserset: { relation: 'nope' } } } }] }),
      (e) => e.statusCode === 400,
    );
  });

  test('write tuples, check, batch-check, list-objects, list-users', async () => {
    const fga = client(gw, storeId);
    await fga.write({
      writes: [
        { user: 'user:anne', relation: 'owner', object: 'document:1' },
        { user: 'group:eng#member', relation: 'viewer', object: 'document:2' },
        { user: 'user:bob', relation: 'member', object: 'group:eng' },
        { user: 'user:*', relation: 'viewer', object: 'document:public' },
      ],
    }, { authorizationModelId: modelId });

    assert.equal((await fga.check({ user: 'user:anne', relation: 'viewer', object: 'document:1' })).allowed, true);
    assert.equal((await fga.check({ user: 'user:bob', relation: 'viewer', object: 'document:1' })).allowed, false);
    assert.equal((await fga.check({ user: 'user:bob', relation: 'viewer', object: 'document:2' })).allowed, true);
    const ctx = await fga.check({
      user: 'user:carl', relation: 'viewer', object: 'document:1',
      contextualTuples: [{ user: 'user:carl', relation: 'owner', object: 'document:1' }],
    });
    assert.equal(ctx.allowed, true);

    const batch = await fga.batchCheck({
      checks: [
        { user: 'user:anne', relation: 'owner', object: 'document:1', correlationId: 'a' },
        { user: 'user:bob', relation: 'owner', object: 'document:1', correlationId: 'b' },
      ],
    });
    const byId = Object.fromEntries(batch.result.map((r) => [r.correlationId, r.allowed]));
    assert.deepEqual(byId, { a: true, b: false });

    const objs = await fga.listObjects({ user: 'user:bob', relation: 'viewer', type: 'document' });
    assert.deepEqual(objs.objects.sort(), ['document:2', 'document:public']);

    const users = await fga.listUsers({
      object: { type: 'document', id: 'public' }, relation: 'viewer', user_filters: [{ type: 'user' }],
    });
    assert.deepEqual(users.users, [{ wildcard: { type: 'user' } }]);
    const anne = await fga.listUsers({
      object: { type: 'document', id: '1' }, relation: 'viewer', user_filters: [{ type: 'user' }],
    });
    assert.deepEqual(anne.users, [{ object: { type: 'user', id: 'anne' } }]);

    const tree = await fga.expand({ relation: 'viewer', object: 'document:2' });
    assert.deepEqual(tree.tree.root, {
      name: 'document:2#viewer',
      union: {
        nodes: [
          { name: 'document:2#viewer', leaf: { users: { users: ['group:eng#member'] } } },
          { name: 'document:2#viewer', leaf: { computed: { userset: 'document:2#owner' } } },
        ],
      },
    });
  });

  test('a tuple the model does not admit is refused (400)', async () => {
    await assert.rejects(
      client(gw, storeId).write({ writes: [{ user: 'group:eng', relation: 'owner', object: 'document:9' }] }),
      (e) => e.statusCode === 400,
    );
  });

  test('read and read changes', async () => {
    const fga = client(gw, storeId);
    const all = await fga.read();
    assert.equal(all.tuples.length, 4);
    const one = await fga.read({ object: 'document:1' });
    assert.deepEqual(one.tuples.map((t) => t.key.user), ['user:anne']);
    const page = await fga.read({}, { pageSize: 3 });
    assert.equal(page.tuples.length, 3);
    assert.ok(page.continuation_token);
    const rest = await fga.read({}, { pageSize: 3, continuationToken: page.continuation_token });
    assert.equal(rest.tuples.length, 1);

    await fga.deleteTuples([{ user: 'user:anne', relation: 'owner', object: 'document:1' }]);
    assert.equal((await fga.check({ user: 'user:anne', relation: 'viewer', object: 'document:1' })).allowed, false);

    const ch = await fga.readChanges({}, { pageSize: 3 });
    assert.equal(ch.changes.length, 3);
    assert.equal(ch.changes[0].operation, 'TUPLE_OPERATION_WRITE');
    const ch2 = await fga.readChanges({}, { pageSize: 3, continuationToken: ch.continuation_token });
    assert.equal(ch2.changes.length, 2);
    assert.equal(ch2.changes[1].operation, 'TUPLE_OPERATION_DELETE');
    const groups = await fga.readChanges({ type: 'group' });
    assert.equal(groups.changes.length, 1);
  });

  test('auth is required', async () => {
    await assert.rejects(client(gw, storeId, null).listStores(), (e) => e.statusCode === 401);
    await assert.rejects(client(gw, storeId, 'x'.repeat(40)).listStores(), (e) => e.statusCode === 401);
    const raw = await fetch(`${gw.adminUrl}/stores`);
    assert.equal(raw.status, 401);
  });

  test('an unknown store is 404', async () => {
    await assert.rejects(client(gw, '01ARZ3NDEKTSV4RRFFQ69G5FAV').getStore(), (e) => e.statusCode === 404);
  });

  test('conditional tuples round-trip with their context', async () => {
    const store = await client(gw).createStore({ name: 'conditions' });
    const fga = client(gw, store.id);
    await fga.writeAuthorizationModel({
      schema_version: '1.1',
      type_definitions: [
        { type: 'user' },
        {
          type: 'document',
          relations: { viewer: { this: {} } },
          metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'user', condition: 'small' }] } } },
        },
      ],
      conditions: {
        small: {
          name: 'small',
          expression: 'x < limit',
          parameters: { x: { type_name: 'TYPE_NAME_INT' }, limit: { type_name: 'TYPE_NAME_INT' } },
        },
      },
    });
    const tuple = { user: 'user:anne', relation: 'viewer', object: 'document:1', condition: { name: 'small', context: { limit: 10 } } };
    await fga.write({ writes: [tuple] });
    const read = await fga.read();
    assert.deepEqual(read.tuples.map((t) => t.key), [tuple]);
    await assert.rejects(
      fga.write({ writes: [{ user: 'user:bob', relation: 'viewer', object: 'document:1' }] }),
      (e) => e.statusCode === 400,
    );
  });

  test('stores, models and tuples survive a restart', async () => {
    const dataDir = path.join(await makeTempDir(), 'data');
    const config = (dir) => baseConfig(dir).replace(/^data_dir: .*$/m, `data_dir: ${JSON.stringify(dataDir)}`);
    let first = await startAigis(config);
    let id;
    try {
      const store = await client(first).createStore({ name: 'durable' });
      id = store.id;
      const fga = client(first, id);
      await fga.writeAuthorizationModel(MODEL);
      await fga.write({ writes: [{ user: 'user:anne', relation: 'owner', object: 'document:1' }] });
    } finally {
      await first.stop();
    }
    const second = await startAigis(config, { env: { AIGIS_MASTER_KEY: first.masterKey } });
    try {
      const fga = client(second, id);
      assert.equal((await fga.getStore()).name, 'durable');
      assert.equal((await fga.check({ user: 'user:anne', relation: 'viewer', object: 'document:1' })).allowed, true);
      assert.equal((await fga.readChanges()).changes.length, 1);
    } finally {
      await second.stop();
      await fsp.rm(path.dirname(dataDir), { recursive: true, force: true }).catch(() => {});
    }
  });
});
