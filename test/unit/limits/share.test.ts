import t from 'tap'
import {
  coldShare,
  grantOf,
  learnedShareCap,
  placeholderShare,
  rebalance,
  refusalRetryAfterS,
  reserveOf,
} from '../../../src/limits/share.js'
import { LIMIT_SYNC_CASES, QUIET } from '../../fixtures/limit-sync-cases.js'
import { applyReport } from '../../helpers/limit-backend.js'

// 2026-11-25T10:00:30Z: mid-minute.
const T0 = Date.UTC(2026, 10, 25, 10, 0, 30)
const MINUTE = Math.floor(T0 / 60_000)

t.test('the grant arithmetic passes the table the Lua script must pass', async (t) => {
  for (const c of LIMIT_SYNC_CASES) {
    t.test(c.name, async (t) => {
      t.strictSame(applyReport(c.before, { ...QUIET, ...c.args }).reply, c.reply)
    })
  }
})

t.test('grantOf never grants more than asked or than is left', async (t) => {
  let checked = 0
  for (const rpm of [0, 1, 7, 60, 100])
    for (const counted of [0, 5, 60, 120])
      for (const want of [0, 1, 30, 200])
        for (const instances of [1, 2, 3])
          for (let unreported = 0; unreported < instances; unreported++) {
            const g = grantOf({ want, rpm, counted, previous: 30, previousWeightMilli: 500, instances, unreported })
            const left = rpm - counted - 15 - unreported * placeholderShare(rpm, instances)
            t.ok(g >= 0 && g <= want && (g === 0 || g <= left), `rpm ${rpm} counted ${counted} want ${want}`)
            checked++
          }
  t.ok(checked > 100)
})

t.test('a placeholder is never smaller than a cold share, so no token is handed out twice', async (t) => {
  let cases = 0
  for (let rpm = 1; rpm <= 120; rpm++)
    for (let n = 1; n <= 6; n++)
      for (const used of [0, 1, Math.floor(rpm / 3), rpm])
        for (const previous of [0, 0.5, rpm / 4]) {
          const cold = coldShare(rpm, used, previous, n)
          if (cold > placeholderShare(rpm, n)) t.fail(`rpm ${rpm}, ${n} instances: cold ${cold}`)
          // n cold shares together stay within what is left.
          if (n * cold > Math.max(0, rpm - used - previous)) t.fail(`rpm ${rpm}, ${n} instances: ${n} × ${cold}`)
          cases++
        }
  t.pass(`${cases} cases`)
})

t.test('a learned agent is capped by the smallest placeholder of the minute', async (t) => {
  for (let rpm = 1; rpm <= 120; rpm++)
    for (let most = 1; most <= 6; most++)
      for (let n = 1; n <= most; n++)
        if (learnedShareCap(rpm, most) > placeholderShare(rpm, n)) t.fail(`rpm ${rpm} most ${most} n ${n}`)
  t.equal(learnedShareCap(60, 3), 20)
  t.equal(learnedShareCap(10, 3), 3, 'rounded down')
})

t.test('reserveOf: a tenth of a share, at least one', async (t) => {
  const CASES: ReadonlyArray<readonly [number, number, number]> = [
    [100, 1, 10],
    [100, 4, 3],
    [600, 1, 60],
    [5, 1, 1],
    [1, 8, 1],
  ]
  for (const [rpm, n, reserve] of CASES) t.equal(reserveOf(rpm, n), reserve, `rpm ${rpm}, ${n} instances`)
})

t.test('rebalance: a fair share of what is held and unclaimed; without demand, a reserve', async (t) => {
  const base = { held: 0, rpm: 100, counted: 0, previousWeighted: 0, instances: 1, demand: true, holdNone: false }
  const CASES: ReadonlyArray<readonly [string, Partial<typeof base>, { returned: number; want: number }]> = [
    ['alone with the whole budget unclaimed: ask for all of it', {}, { returned: 0, want: 100 }],
    ['four instances: ceil((22 + 74) / 4) = 24', { held: 22, counted: 26, instances: 4 }, { returned: 0, want: 2 }],
    ['held above a fair share goes back', { held: 24, counted: 90, instances: 4 }, { returned: 15, want: 0 }],
    ['without demand, down to a reserve', { held: 99, counted: 100, demand: false }, { returned: 89, want: 0 }],
    ['the previous minute weighs on what is unclaimed', { previousWeighted: 40 }, { returned: 0, want: 60 }],
    ['holding nothing (stopping, not shared, no rpm)', { held: 30, holdNone: true }, { returned: 30, want: 0 }],
  ]
  for (const [name, over, expected] of CASES)
    t.test(name, async (t) => t.strictSame(rebalance({ ...base, ...over }), expected))
})

t.test('refusalRetryAfterS: a second while the window has room, else when it has', async (t) => {
  const base = { rpm: 10, minute: MINUTE, now: T0, counted: 0, previous: 0 }
  const CASES: ReadonlyArray<readonly [string, Partial<typeof base>, number]> = [
    ['budget left somewhere: retry in a second', { counted: 9 }, 1],
    [
      'used up this minute: when its requests have faded enough in the next (30 s, then 6 s of it)',
      { counted: 10 },
      36,
    ],
    ['a budget of one: that request counts for a whole minute', { rpm: 1, counted: 1 }, 90],
    [
      'used up by the previous minute: retry when it has faded enough (6 s into the minute)',
      { previous: 10, now: MINUTE * 60_000 + 1000 },
      5,
    ],
    ['over budget this minute alone: into the next, 15 s of it', { counted: 12, previous: 5 }, 45],
  ]
  for (const [name, over, s] of CASES) t.test(name, async (t) => t.equal(refusalRetryAfterS({ ...base, ...over }), s))
})
