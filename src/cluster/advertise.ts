import { isIpAddress } from '../config/validators.js';
import type { HostFacts } from './probe.js';

/** The SSH address when it is an IP of the host, else the swarm's, the kernel's route source, else the first global address. */
export function defaultAdvertiseAddr(
  sshAddress: string | undefined,
  facts: HostFacts,
): string | undefined {
  if (
    sshAddress &&
    isIpAddress(sshAddress) &&
    (facts.addresses.length === 0 || facts.addresses.includes(sshAddress))
  ) {
    return sshAddress;
  }
  return facts.swarm.nodeAddr ?? facts.routeSrc ?? facts.addresses[0];
}
