import { describe, expect, it } from 'vitest';
import {
  osFamily,
  parseDf,
  parseIpAddrs,
  parseMemTotalKb,
  parseOsRelease,
  parseProcNet,
  parseRouteSrc,
} from '../../src/cluster/parse.js';

describe('probe parsers', () => {
  it('os-release', () => {
    const os = parseOsRelease(
      'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n',
    );
    expect(os).toEqual({
      id: 'ubuntu',
      idLike: ['debian'],
      versionId: '22.04',
      prettyName: 'Ubuntu 22.04.4 LTS',
    });
    expect(osFamily(os)).toBe('debian');
    expect(osFamily(parseOsRelease('ID="rocky"\nID_LIKE="rhel centos fedora"\n'))).toBe('rhel');
    expect(osFamily(parseOsRelease('ID=alpine\n'))).toBe('unknown');
  });

  it('meminfo and df', () => {
    expect(parseMemTotalKb('MemTotal:        4026532 kB\nMemFree: 1 kB\n')).toBe(4026532);
    expect(
      parseDf(
        'Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 263174212 23000000 83000000 22% /\n',
      ),
    ).toEqual({
      totalKb: 263174212,
      availKb: 83000000,
      mount: '/',
    });
  });

  it('/proc/net listeners: TCP LISTEN and bound UDP only', () => {
    const tcp = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
      '   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1',
      '   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0 0',
    ].join('\n');
    expect(parseProcNet(tcp, 'tcp')).toEqual([80, 443]);
    const udp =
      '  sl local rem st\n   0: 00000000:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2\n';
    expect(parseProcNet(udp, 'udp')).toEqual([4789]);
  });

  it('addresses and route source', () => {
    const addrs = [
      '2: eth0    inet 203.0.113.10/24 brd 203.0.113.255 scope global eth0\\       valid_lft forever',
      '3: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0',
      '4: docker_gwbridge    inet 172.18.0.1/16 scope global docker_gwbridge',
    ].join('\n');
    expect(parseIpAddrs(addrs)).toEqual(['203.0.113.10']);
    expect(
      parseRouteSrc('1.1.1.1 via 203.0.113.1 dev eth0 src 203.0.113.10 uid 0\n    cache\n'),
    ).toBe('203.0.113.10');
    expect(parseRouteSrc('RTNETLINK answers: Network is unreachable')).toBeUndefined();
  });
});
