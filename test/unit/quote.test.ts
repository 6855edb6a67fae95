import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { quoteArg, quoteArgv } from '../../src/core/quote.js';

describe('quoteArg', () => {
  it.each([
    ['docker', 'docker'],
    ['--label-add=role=db', '--label-add=role=db'],
    ['10.0.0.5:2377', '10.0.0.5:2377'],
    ['/var/run/docker.sock', '/var/run/docker.sock'],
    ['user@host,a+b%c', 'user@host,a+b%c'],
    ['', "''"],
    ['a b', "'a b'"],
    ['$HOME', "'$HOME'"],
    [';rm -rf /', "';rm -rf /'"],
    ["it's", "'it'\\''s'"],
    ["'", "''\\'''"],
    ['"q"', `'"q"'`],
    ['`id`', "'`id`'"],
    ['$(id)', "'$(id)'"],
    ['*', "'*'"],
    ['~', "'~'"],
    ['a\nb', "'a\nb'"],
    ['back\\slash', "'back\\slash'"],
    ['x|y&z>w<v', "'x|y&z>w<v'"],
    ['[fd00::5]:22', "'[fd00::5]:22'"],
    ['#comment', "'#comment'"],
    ['é', "'é'"],
  ])('%j → %s', (word, quoted) => {
    expect(quoteArg(word)).toBe(quoted);
  });
});

describe('quoteArgv', () => {
  it('joins quoted words with single spaces', () => {
    expect(quoteArgv(['sudo', '-n', '--', 'printf', '%s\n', 'a b', '$HOME', ';rm', ''])).toBe(
      "sudo -n -- printf '%s\n' 'a b' '$HOME' ';rm' ''",
    );
    expect(quoteArgv(['sh', '-c', 'echo "$1" | wc -c', 'sh', "it's"])).toBe(
      `sh -c 'echo "$1" | wc -c' sh 'it'\\''s'`,
    );
    expect(quoteArgv([])).toBe('');
  });

  it('round-trips through a real POSIX shell word for word', () => {
    const words = [
      'a b',
      '$HOME',
      ';rm',
      "it's",
      "''",
      '"q"',
      '`id`',
      '$(id)',
      '*',
      '~',
      'x\ny',
      '\\',
      '',
      '-n',
      'é',
    ];
    // sh splits the string back into argv; printf prints each word NUL-terminated.
    const out = execFileSync('sh', ['-c', `printf '%s\\0' ${quoteArgv(words)}`], {
      encoding: 'utf8',
    });
    expect(out.split('\0').slice(0, -1)).toEqual(words);
  });
});
