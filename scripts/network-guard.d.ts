export interface NetworkRuleViolation {
  kind: string;
  address: string;
  reason: string;
  pid: number;
}
export function refusal(address: string | undefined, socket?: unknown): string | undefined;
export function installNetworkGuard(): void;
export function takeViolations(): NetworkRuleViolation[];
export function reportFileOf(pid: number): string;
export function watchMarkerOf(pid: number): string;
