import t from 'tap'
import { parseDurationMs } from '../../../src/config/duration.js'

t.test('single units', async (t) => {
  t.equal(parseDurationMs('500ms'), 500)
  t.equal(parseDurationMs('45s'), 45_000)
  t.equal(parseDurationMs('30m'), 1_800_000)
  t.equal(parseDurationMs('2H'), 7_200_000, 'units in any case')
  t.equal(parseDurationMs(' 7d '), 604_800_000, 'spaces around the whole')
  t.equal(parseDurationMs('1w'), 604_800_000)
  t.equal(parseDurationMs('30 m'), 1_800_000, 'a space between a number and its unit')
})

t.test('sums written together', async (t) => {
  t.equal(parseDurationMs('1h30m'), 5_400_000)
  t.equal(parseDurationMs('2d12h'), 216_000_000)
  t.equal(parseDurationMs('1m30s500ms'), 90_500)
  t.equal(parseDurationMs('30m1h'), 5_400_000, 'in any order')
})

t.test('not durations', async (t) => {
  for (const bad of ['', '30', 'h', '1h 30m', '1.5h', '-1h', '1y', '1h30', '10000000000s', '1h'.repeat(40), '1h\n30m'])
    t.equal(parseDurationMs(bad), null, JSON.stringify(bad))
})
