/**
 * Running the agent on OpenWrt (no systemd): a procd init script for the daemon (procd's
 * rc.common conventions, busybox ash) and, for `--daemon off`, the crontab lines of `checkin`.
 * Everything here is text a router's /bin/sh runs: POSIX sh, no bash.
 */
import { existsSync } from 'node:fs';
import { DEFAULT_STATE_DIR } from '../constants.js';

/** OpenWrt says what it is in this file. */
export const OPENWRT_RELEASE_FILE = '/etc/openwrt_release';
/** OpenWrt keeps /var in RAM: the identity must live on flash, under /etc. */
export const OPENWRT_STATE_DIR = '/etc/wiremesh';
/** Where the procd init script is installed. */
export const PROCD_SCRIPT_PATH = '/etc/init.d/wiremesh';
/** Delay of the second crontab line, so the mesh checks in twice a minute. */
export const CRON_SECOND_CHECKIN_DELAY_S = 15;
/** procd respawn: restart after a crash, forever (threshold s, timeout s, retries 0 = unlimited). */
const PROCD_RESPAWN = '3600 5 0';

/** Whether this host is OpenWrt. */
export function isOpenWrt(releaseFile = OPENWRT_RELEASE_FILE): boolean {
  return existsSync(releaseFile);
}

/** The default state directory: /etc/wiremesh on OpenWrt (flash), else /var/lib/wiremesh. */
export function defaultStateDir(releaseFile = OPENWRT_RELEASE_FILE): string {
  return isOpenWrt(releaseFile) ? OPENWRT_STATE_DIR : DEFAULT_STATE_DIR;
}

/** `word` quoted for a POSIX shell when it needs it (single quotes; an inner ' as '\''). Pure. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The two lines to put in root's crontab for `--daemon off` hosts: a check-in at the start of
 * every minute and one CRON_SECOND_CHECKIN_DELAY_S later. Pure.
 */
export function cronLines(argv0: readonly string[], stateDir: string): [string, string] {
  const command = `${[...argv0, 'checkin', '--state-dir', stateDir].map(shellQuote).join(' ')} >/dev/null 2>&1`;
  return [`* * * * * ${command}`, `* * * * * sleep ${CRON_SECOND_CHECKIN_DELAY_S}; ${command}`];
}

/**
 * The procd init script (/etc/init.d/wiremesh) running `argv0 daemon --state-dir stateDir`,
 * respawned by procd; `reload` sends SIGHUP (the daemon rescans its state directory). Pure.
 */
export function procdScript(argv0: readonly string[], stateDir: string): string {
  const command = [...argv0, 'daemon', '--state-dir', stateDir].map(shellQuote).join(' ');
  return [
    '#!/bin/sh /etc/rc.common',
    '# wiremesh mesh agent under procd (OpenWrt). Installed by `wiremesh install-service`.',
    '# shellcheck shell=sh disable=SC2034 # START, STOP and USE_PROCD are read by /etc/rc.common',
    '',
    'START=99',
    'STOP=10',
    'USE_PROCD=1',
    '',
    'start_service() {',
    '\tprocd_open_instance',
    `\tprocd_set_param command ${command}`,
    `\tprocd_set_param respawn ${PROCD_RESPAWN}`,
    '\tprocd_set_param stdout 1',
    '\tprocd_set_param stderr 1',
    '\tprocd_close_instance',
    '}',
    '',
    'reload_service() {',
    '\tprocd_send_signal wiremesh',
    '}',
    '',
  ].join('\n');
}
