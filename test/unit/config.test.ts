import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, PROJECT_ROOT } from '../../src/config.js';

describe('the environment, parsed', () => {
  test('when nothing is set, then the contract\'s defaults: port 8000 on 0.0.0.0, metrics on 9464, data in the project\'s .movr/, a 3 s drain grace', () => {
    const config = loadConfig({});
    assert.equal(config.port, 8000);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.metricsPort, 9464);
    assert.equal(config.dataDir, path.join(PROJECT_ROOT, '.movr'));
    assert.equal(config.region, 'gcp-us-east1');
    assert.equal(config.webConcurrency, 1);
    assert.equal(config.shutdownGraceMs, 3000);
  });

  test('when values are empty, then they count as unset', () => {
    const config = loadConfig({ METRICS_PORT: '', MOVR_DATA_DIR: '', PORT: '', HOST: '', SHUTDOWN_GRACE_MS: '' });
    assert.deepEqual([config.metricsPort, config.dataDir, config.port, config.host, config.shutdownGraceMs], [9464, path.join(PROJECT_ROOT, '.movr'), 8000, '0.0.0.0', 3000]);
  });

  test('when METRICS_PORT is 0, then 0 is kept (server.ts then serves no metrics; test/process checks the process)', () => {
    assert.equal(loadConfig({ METRICS_PORT: '0' }).metricsPort, 0);
  });

  test('when the drain grace is set, then it is used within 0 to 4 s, so that a stop still ends within 10 s', () => {
    assert.equal(loadConfig({ SHUTDOWN_GRACE_MS: '200' }).shutdownGraceMs, 200);
    assert.equal(loadConfig({ SHUTDOWN_GRACE_MS: '0' }).shutdownGraceMs, 0);
    for (const bad of ['4001', '-1', 'soon']) {
      assert.throws(() => loadConfig({ SHUTDOWN_GRACE_MS: bad }), (error: unknown) => error instanceof ConfigError && /SHUTDOWN_GRACE_MS/.test(error.message), bad);
    }
  });

  test('when BCRYPT_COST is unset, then 12; when set, then bcrypt\'s 4 to 31, and production refuses it', () => {
    assert.equal(loadConfig({}).bcryptCost, 12);
    assert.equal(loadConfig({ BCRYPT_COST: '' }).bcryptCost, 12);
    assert.equal(loadConfig({ BCRYPT_COST: '4' }).bcryptCost, 4);
    assert.equal(loadConfig({ BCRYPT_COST: '13' }).bcryptCost, 13);
    for (const bad of ['3', '32', '12.5', 'high']) {
      assert.throws(() => loadConfig({ BCRYPT_COST: bad }), (error: unknown) => error instanceof ConfigError && /BCRYPT_COST/.test(error.message), bad);
    }
    const production = { NODE_ENV: 'production', DB_URI: 'postgresql://db/movr', SECRET_KEY: 'a-production-secret-of-at-least-32-characters' };
    assert.equal(loadConfig({ ...production, BCRYPT_COST: '' }).bcryptCost, 12);
    for (const cost of ['4', '12', '13']) {
      assert.throws(() => loadConfig({ ...production, BCRYPT_COST: cost }), (error: unknown) => error instanceof ConfigError && /BCRYPT_COST: is for development and tests: production always hashes at 12/.test(error.message), cost);
    }
  });
});
