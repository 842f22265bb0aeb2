import t from 'tap'
import { parseDistFilename } from '../../../src/packages/pypi-filename.js'
import { classifyPypiPath } from '../../../src/packages/pypi-path.js'

t.test('wheel file names, with and without build tags', async (t) => {
  const cases: [string, string, string][] = [
    ['requests-2.31.0-py3-none-any.whl', 'requests', '2.31.0'],
    ['numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl', 'numpy', '1.26.4'],
    ['Django-5.0.1-py3-none-any.whl', 'django', '5.0.1'],
    ['zope.interface-6.1-cp311-cp311-win_amd64.whl', 'zope-interface', '6.1'],
    ['typing_extensions-4.9.0-py3-none-any.whl', 'typing-extensions', '4.9.0'],
    ['pkg-1.0-1-py2.py3-none-any.whl', 'pkg', '1.0'],
    ['pkg-1.0-12abc-py3-none-any.whl', 'pkg', '1.0'],
    ['torch-2.2.0rc1-cp310-cp310-linux_x86_64.whl', 'torch', '2.2.0rc1'],
    ['pkg-1!2.0.post1.dev3-py3-none-any.whl', 'pkg', '1!2.0.post1.dev3'],
  ]
  for (const [file, project, version] of cases) {
    t.same(parseDistFilename(file), { ok: true, kind: 'wheel', project, version, metadata: false }, file)
  }
})

t.test('sdists: dashes in old names need the project to split reliably', async (t) => {
  const cases: [string, string | undefined, string, string][] = [
    ['requests-2.31.0.tar.gz', undefined, 'requests', '2.31.0'],
    ['typing_extensions-4.9.0.tar.gz', undefined, 'typing-extensions', '4.9.0'],
    ['python-dateutil-2.8.2.tar.gz', undefined, 'python-dateutil', '2.8.2'],
    ['python-dateutil-2.8.2.tar.gz', 'python_dateutil', 'python-dateutil', '2.8.2'],
    ['foo-2-bar-1.0.tar.gz', 'foo-2-bar', 'foo-2-bar', '1.0'],
    ['pkg-1.0-2.tar.gz', 'pkg', 'pkg', '1.0-2'],
    ['Paste-1.7.5.1.zip', undefined, 'paste', '1.7.5.1'],
    ['pkg-1.0.tar.bz2', undefined, 'pkg', '1.0'],
    ['pkg-1.0.tgz', undefined, 'pkg', '1.0'],
    ['pkg-1.0-beta.tar.gz', 'pkg', 'pkg', '1.0-beta'],
  ]
  for (const [file, expected, project, version] of cases) {
    t.same(
      parseDistFilename(file, expected),
      { ok: true, kind: 'sdist', project, version, metadata: false },
      `${file} ${String(expected)}`,
    )
  }
})

t.test('sdists read without the project: the PEP 440 split, and every other split named', async (t) => {
  const cases: [string, string, string, { project: string; version: string }[]][] = [
    ['foo-2-bar-1.0.tar.gz', 'foo-2-bar', '1.0', [{ project: 'foo', version: '2-bar-1.0' }]],
    ['dash-3d-1.0.tar.gz', 'dash-3d', '1.0', [{ project: 'dash', version: '3d-1.0' }]],
    ['pkg-1.0-2.tar.gz', 'pkg', '1.0-2', [{ project: 'pkg-1-0', version: '2' }]],
    ['odd-2x-3y.tar.gz', 'odd', '2x-3y', [{ project: 'odd-2x', version: '3y' }]],
    ['dash-3d-v1.0.tar.gz', 'dash-3d', '1.0', [{ project: 'dash', version: '3d-v1.0' }]],
    ['dash-3d-V2.tar.gz', 'dash-3d', '2', [{ project: 'dash', version: '3d-V2' }]],
  ]
  for (const [file, project, version, alternatives] of cases)
    t.same(parseDistFilename(file), { ok: true, kind: 'sdist', project, version, metadata: false, alternatives }, file)
})

t.test('eggs and PEP 658 metadata files', async (t) => {
  t.same(parseDistFilename('setuptools-0.6c11-py2.7.egg'), {
    ok: true,
    kind: 'egg',
    project: 'setuptools',
    version: '0.6c11',
    metadata: false,
  })
  t.same(parseDistFilename('zope.interface-3.6.1-py2.6-win32.egg'), {
    ok: true,
    kind: 'egg',
    project: 'zope-interface',
    version: '3.6.1',
    metadata: false,
  })
  t.same(parseDistFilename('requests-2.31.0-py3-none-any.whl.metadata'), {
    ok: true,
    kind: 'wheel',
    project: 'requests',
    version: '2.31.0',
    metadata: true,
  })
})

t.test('file names that are not distributions, or do not parse, fail with a reason', async (t) => {
  const cases: [string, string | undefined, string][] = [
    ['pkg-1.0.win32.exe', undefined, 'unknown_extension'],
    ['pkg-1.0.rpm', undefined, 'unknown_extension'],
    ['README', undefined, 'unknown_extension'],
    ['pkg-1.0-py3-none.whl', undefined, 'bad_wheel'],
    ['pkg-1.0-x-py3-none-any.whl', undefined, 'bad_wheel'], // build tag must start with a digit
    ['pkg-1.0-1-2-py3-none-any.whl', undefined, 'bad_wheel'],
    ['pkg-latest-py3-none-any.whl', undefined, 'bad_version'],
    ['pkg.tar.gz', undefined, 'bad_version'],
    ['pkg-.tar.gz', undefined, 'bad_version'],
    ['-1.0.tar.gz', undefined, 'bad_name'],
    ['_pkg-1.0-py3-none-any.whl', undefined, 'bad_name'],
    ['other-1.0.tar.gz', 'pkg', 'name_mismatch'],
    ['other-1.0-py3-none-any.whl', 'pkg', 'name_mismatch'],
    ['../pkg-1.0.tar.gz', undefined, 'bad_char'],
    ['pkg%2f-1.0.tar.gz', undefined, 'bad_char'],
    ['pkg 1.0.tar.gz', undefined, 'bad_char'],
    ['', undefined, 'bad_char'],
    ['pkg.egg', undefined, 'bad_version'],
  ]
  for (const [file, expected, problem] of cases) t.same(parseDistFilename(file, expected), { ok: false, problem }, file)
})

t.test('PyPI paths: simple pages, legacy JSON and files', async (t) => {
  const cases: [string, object][] = [
    ['/simple/requests/', { kind: 'simple_project', project: 'requests' }],
    ['/simple/Requests', { kind: 'simple_project', project: 'requests' }],
    ['/simple/Friendly_Bard/?format=json', { kind: 'simple_project', project: 'friendly-bard' }],
    ['/simple/', { kind: 'other' }],
    ['/', { kind: 'other' }],
    ['/project/requests/', { kind: 'other' }],
    ['/pypi/requests/json', { kind: 'legacy_json', project: 'requests', version: null }],
    ['/pypi/Requests/2.31.0/json', { kind: 'legacy_json', project: 'requests', version: '2.31.0' }],
    [
      '/packages/f9/9b/335f9764261e915ed497fcdeb11df5dfd6f7bf257d4a6a2a686d80da4d54/requests-2.31.0-py3-none-any.whl',
      {
        kind: 'file',
        filename: 'requests-2.31.0-py3-none-any.whl',
        project: 'requests',
        version: '2.31.0',
        dist: 'wheel',
      },
    ],
    [
      '/packages/source/r/requests/requests-2.31.0.tar.gz',
      { kind: 'file', project: 'requests', version: '2.31.0', dist: 'sdist', metadata: false },
    ],
    [
      '/packages/aa/bb/cc/pkg-1%212.0.tar.gz',
      { kind: 'file', filename: 'pkg-1!2.0.tar.gz', project: 'pkg', version: '1!2.0' },
    ],
    [
      '/packages/aa/bb/cc/requests-2.31.0-py3-none-any.whl.metadata',
      { kind: 'file', project: 'requests', metadata: true },
    ],
  ]
  for (const [path, want] of cases) t.match(classifyPypiPath(path), want, path)
})

t.test('PyPI paths built to confuse are unparseable', async (t) => {
  const cases: [string, string][] = [
    ['simple/requests/', 'not_absolute'],
    ['/simple/requests//', 'empty_segment'],
    ['/simple/../requests/', 'dot_segment'],
    ['/simple/%2e%2e/', 'dot_segment'],
    ['/simple/req%252fuests/', 'bad_encoding'],
    ['/simple/req%2fuests/', 'bad_encoding'],
    ['/simple/req%zzuests/', 'bad_encoding'],
    ['/simple/-bad-/', 'bad_name'],
    ['/simple/requests/extra/', 'unknown_shape'],
    ['/pypi/requests/', 'unknown_shape'],
    ['/pypi/-x/json', 'bad_name'],
    ['/packages/requests-2.31.0.tar.gz', 'unknown_shape'],
    ['/packages/aa/bb/cc/setup.exe', 'bad_filename'],
  ]
  for (const [path, problem] of cases) t.same(classifyPypiPath(path), { kind: 'unparseable', problem }, path)
})
