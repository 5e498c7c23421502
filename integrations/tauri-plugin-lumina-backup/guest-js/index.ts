// TypeScript bindings of tauri-plugin-lumina-backup: typed calls of the
// plugin's commands (`plugin:lumina-backup|<command>`), progress events and
// cancellation, the watcher and its events. The types mirror src/models.rs,
// src/progress.rs, src/watch.rs, src/watch_config.rs and src/error.rs one to
// one (the watch events mirror the library's `WatchEvent`).

import { invoke } from '@tauri-apps/api/core'
import { listen, type UnlistenFn } from '@tauri-apps/api/event'

/** The event progress is emitted under. */
export const PROGRESS_EVENT = 'lumina-backup://progress'

/** The event the watcher's events are emitted under. */
export const WATCH_EVENT = 'lumina-backup://watch'

// ---------------------------------------------------------------- errors

/**
 * What a failed command rejects with. `kind` is the library's error kind or
 * one of the plugin's own (`NotOpen`, `InvalidInput`, `Internal`, `Config`,
 * `WatchRunning`).
 */
export interface BackupError {
  kind: ErrorKind
  /** One line naming the object and what to do. */
  message: string
  /** What the app can change in its request to get past the error. */
  remedy: Remedy | null
  /** The file or folder the error is about, when it names one. */
  path: string | null
  /** `Config`: the 1-based line of the configuration file, when known. */
  line: number | null
  /**
   * `Config`: the key, dotted in a file (`hooks.on_success`), camelCase with
   * indices in a configuration given to `watchStart`
   * (`config.databases[0].minGap`).
   */
  key: string | null
}

export type ErrorKind =
  | 'NotOpen'
  | 'InvalidInput'
  | 'Internal'
  | 'Config'
  | 'WatchRunning'
  | 'NoRepository'
  | 'RepositoryExists'
  | 'Locked'
  | 'ReadOnly'
  | 'PassphraseRequired'
  | 'WrongPassword'
  | 'UnknownSnapshot'
  | 'AmbiguousSnapshot'
  | 'BeforeFirstSnapshot'
  | 'NoSuchFile'
  | 'NoSuchDatabase'
  | 'NotADatabase'
  | 'SourceUnavailable'
  | 'InUse'
  | 'Refused'
  | 'RestoreRefused'
  | 'Corrupt'
  | 'TooNew'
  | 'MissingData'
  | 'Index'
  | 'Io'
  | 'Sqlite'
  | 'Export'
  | 'Cancelled'
  | 'NoSpace'
  | 'Remote'
  | 'Credentials'

export type Remedy =
  | 'force'
  | 'live'
  | 'notLive'
  | 'weakerCheck'
  | 'noCheck'
  | 'allowEmpty'
  | 'nameDatabase'
  | 'giveRules'
  | 'exportJson'
  | 'takeSnapshot'
  | 'listKeys'
  | 'other'

/** Whether `e` is an error the plugin rejected with. */
export function isBackupError(e: unknown): e is BackupError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as BackupError).kind === 'string' &&
    typeof (e as BackupError).message === 'string'
  )
}

// ---------------------------------------------------------------- results

export interface RepositoryInfo {
  location: string
  encrypted: boolean
  /** `open` created the repository. */
  created: boolean
  formatVersion: number
  /** Things the open did that the user should hear about (an index rebuilt). */
  notices: string[]
}

export interface SnapshotInfo {
  /** Full id (64 hex characters). */
  id: string
  /** Short id, as shown to people. */
  shortId: string
  /** RFC 3339, UTC. */
  time: string
  /** Milliseconds since the epoch: `new Date(timeMs)`. */
  timeMs: number
  /** The database's path as recorded. */
  source: string
  /** `pre-restore` marks the safety copy a restore took. */
  tags: string[]
  note: string
  totalBytes: number
  /** Bytes this snapshot added to the repository. */
  newBytes: number
  parent: string | null
}

export interface SnapshotResult {
  snapshot: SnapshotInfo
  newChunks: number
  /** Unchanged since the previous snapshot: no page was read. */
  unchanged: boolean
  /** The clock went back since the previous snapshot. */
  clockWentBack: boolean
}

export interface TableDiff {
  /** Keys of rows added: a one-column key is its value, a composite key an array. */
  added: unknown[]
  removed: unknown[]
  changed: unknown[]
  /** For each changed row, the columns that changed. */
  changedColumns: string[][]
}

export interface DiffResult {
  from: string
  /** A snapshot id, or `live:` and the database path. */
  to: string
  /** Tables with differences only. */
  tables: Record<string, TableDiff>
}

/** The newer side of a diff. */
export type DiffAgainst = { snapshot: string } | { live: string }

export type RestoreCheck = 'quick' | 'full' | 'none'

export interface RestoreResult {
  snapshot: SnapshotInfo
  written: string[]
  bytes: number
  /** The safety snapshot of the database that was replaced (with `force`). */
  preRestore: SnapshotInfo | null
  /** Copied into the open database through SQLite (`live`). */
  live: boolean
  setAside: string[]
}

export interface VerifyResult {
  ok: boolean
  /** Each problem, naming the object. */
  problems: string[]
  snapshotsChecked: number
  chunksChecked: number
  chunksMissing: number
  packsChecked: number
  bytesRead: number
  /** The history chain's newest record: a witness to keep elsewhere. */
  chainHead: string | null
}

export interface DatabaseStatus {
  db: string
  snapshots: number
  latestId: string
  latestTime: string
  latestTimeMs: number
}

export interface FailureInfo {
  time: string
  timeMs: number
  operation: string
  db: string
  message: string
}

export interface StatusResult {
  repository: string
  encrypted: boolean
  snapshots: number
  /** Newest first. */
  databases: DatabaseStatus[]
  lastFailure: FailureInfo | null
  storedBytes: number
  logicalBytes: number
  dedupRatio: number | null
  chainHead: string | null
}

// ---------------------------------------------------------------- progress

/** The payload of {@link PROGRESS_EVENT}. */
export type ProgressEvent =
  | {
      kind: 'phase'
      operation: string
      /** `OpenDatabase`, `Capture`, `Export`, `ReadFile`, `CheckImage`, `Diff`, `VerifyPacks`, `ReadData`, ... */
      phase: string
      detail: string | null
      total: number | null
      /** `none`: nothing is counted (show a spinner). */
      unit: 'bytes' | 'items' | 'none'
      noun: string | null
    }
  | { kind: 'advance'; operation: string; done: number; total: number | null }
  | { kind: 'done'; operation: string; outcome: 'succeeded' | 'cancelled' | 'failed' }

/** Options of the long commands (snapshot, diff, restore, verify). */
export interface OperationOptions {
  /** The operation's id (made up when not given); `cancel(id)` stops it. */
  operation?: string
  /** Called with each progress event of this operation. */
  onProgress?: (event: ProgressEvent) => void
  /** Aborting it cancels the operation (it rejects with kind `Cancelled`). */
  signal?: AbortSignal
}

function newOperationId(): string {
  const c = globalThis.crypto
  if (c && typeof c.randomUUID === 'function') return c.randomUUID()
  return `op-${Date.now()}-${Math.random().toString(36).slice(2)}`
}

async function withOperation<T>(
  command: string,
  args: Record<string, unknown>,
  options: OperationOptions = {}
): Promise<T> {
  const operation = options.operation ?? newOperationId()
  const { onProgress, signal } = options
  if (signal?.aborted) {
    const cancelled: BackupError = {
      kind: 'Cancelled',
      message: `operation ${operation} was cancelled before it started`,
      remedy: null,
      path: null,
      line: null,
      key: null
    }
    throw cancelled
  }
  let unlisten: UnlistenFn | undefined
  if (onProgress) {
    unlisten = await listen<ProgressEvent>(PROGRESS_EVENT, (event) => {
      if (event.payload.operation === operation) onProgress(event.payload)
    })
  }
  const onAbort = (): void => {
    void cancel(operation)
  }
  signal?.addEventListener('abort', onAbort)
  try {
    return await invoke<T>(`plugin:lumina-backup|${command}`, { ...args, operation })
  } finally {
    signal?.removeEventListener('abort', onAbort)
    unlisten?.()
  }
}

// ---------------------------------------------------------------- commands

/**
 * Opens the repository at `repo` (a folder, absolute or relative to the app's
 * data folder, or a URL such as `s3://bucket/prefix` when the plugin was built
 * with that service), closing the one open before. With `create`, a missing
 * repository is created first (encrypted when a passphrase is given).
 */
export async function open(
  repo: string,
  options: { passphrase?: string; create?: boolean } = {}
): Promise<RepositoryInfo> {
  return await invoke('plugin:lumina-backup|open', { repo, ...options })
}

/** Closes the open repository, releasing its lock; false if none was open. */
export async function close(): Promise<boolean> {
  return await invoke('plugin:lumina-backup|close')
}

/** Snapshots the database `db` while the app keeps using it. */
export async function snapshot(
  db: string,
  options: { tags?: string[]; note?: string } & OperationOptions = {}
): Promise<SnapshotResult> {
  const { tags, note, ...op } = options
  return await withOperation('snapshot', { db, tags, note }, op)
}

/** The snapshots, oldest first; only those of `db` when given. */
export async function list(db?: string): Promise<SnapshotInfo[]> {
  return await invoke('plugin:lumina-backup|list', { db })
}

/**
 * Row-level differences from `snapshot` (an id, a unique prefix or `latest`)
 * to another snapshot or to the live database. `db` says which database
 * `latest` means when the repository holds several.
 */
export async function diff(
  snapshot: string,
  against: DiffAgainst,
  options: { db?: string } & OperationOptions = {}
): Promise<DiffResult> {
  const { db, ...op } = options
  return await withOperation('diff', { snapshot, against, db }, op)
}

/**
 * Restores `snapshot` to `target`. An existing target is replaced only with
 * `force`, after it was saved as a `pre-restore` snapshot. Close the app's own
 * connections to `target` first (e.g. `await db.close()` of
 * `@tauri-apps/plugin-sql`), or pass `live: true` to copy the snapshot into
 * the open database through SQLite. Needs the `lumina-backup:allow-restore`
 * permission (not in `default`).
 */
export async function restore(
  snapshot: string,
  target: string,
  options: {
    db?: string
    force?: boolean
    live?: boolean
    check?: RestoreCheck
  } & OperationOptions = {}
): Promise<RestoreResult> {
  const { db, force, live, check, ...op } = options
  return await withOperation('restore', { snapshot, target, db, force, live, check }, op)
}

/** Checks the repository; with `readData` re-reads and re-hashes every byte. */
export async function verify(
  options: { readData?: boolean } & OperationOptions = {}
): Promise<VerifyResult> {
  const { readData, ...op } = options
  return await withOperation('verify', { readData }, op)
}

/** The repository's state in brief. */
export async function status(): Promise<StatusResult> {
  return await invoke('plugin:lumina-backup|status')
}

/** Asks the running operation `operation` to stop; false if none runs. */
export async function cancel(operation: string): Promise<boolean> {
  return await invoke('plugin:lumina-backup|cancel', { operation })
}

/**
 * Snapshots `db` before a risky operation: tagged `before:<reason>`
 * (`migration`, `update`, `bulk-import`, `cleanup`, or another single word)
 * and kept by the repository's retention rule for such snapshots.
 */
export async function snapshotBefore(
  db: string,
  reason: BeforeReason,
  options: OperationOptions = {}
): Promise<SnapshotResult> {
  return await withOperation('snapshot_before', { db, reason }, options)
}

/** The reasons the app's design names; any other single word is accepted. */
export type BeforeReason = 'migration' | 'update' | 'bulk-import' | 'cleanup' | (string & {})

// ---------------------------------------------------------------- watcher

/** `daily`, `weekly`, `monthly`, `manual` (only on change) or an interval such as `15m`. */
export type Schedule = 'daily' | 'weekly' | 'monthly' | 'manual' | (string & {})

/** A span of time: `500ms`, `90s`, `15m`, `2h`, `1d`, `1h30m`. */
export type Interval = string

export type Weekday =
  | 'monday'
  | 'tuesday'
  | 'wednesday'
  | 'thursday'
  | 'friday'
  | 'saturday'
  | 'sunday'

/** The keep rules of `lumina-backup config set` (snake_case as in the file). */
export interface RetentionRules {
  keep_last?: number
  keep_hourly?: number
  keep_daily?: number
  keep_weekly?: number
  keep_monthly?: number
  keep_yearly?: number
  keep_within?: string
  keep_tags?: string[]
  /** A span such as `30d`: how long `pre-restore` snapshots are kept. */
  keep_pre_restore?: string
  /** A span such as `90d`: how long `before:<reason>` snapshots are kept. */
  keep_before?: string
}

export type CloudProvider = 'google-drive' | 'dropbox' | 'onedrive'

/** One watched database, with its own settings where they differ. */
export interface WatchDatabase {
  /** The database file (relative: under the app's data folder). */
  path: string
  schedule?: Schedule
  onChange?: boolean
  minGap?: Interval
  tags?: string[]
}

/**
 * A watcher's configuration. `schedule`, `retention`, `cloudProvider` and
 * `cloudPath` take the app's `BackupConfig` values as they are.
 */
export interface WatchConfig {
  /** A folder or location URL; absent: the repository open in the plugin. */
  repository?: string
  databases: WatchDatabase[]
  schedule?: Schedule
  /** Local time of a daily, weekly or monthly snapshot, `"03:00"`. */
  time?: string
  /** Weekly schedules only. */
  weekday?: Weekday
  /** Monthly schedules only: 1 to 28. */
  day?: number
  /** Also snapshot a database when it changes (at most once per `minGap`). */
  onChange?: boolean
  /** Default `60s`. */
  minGap?: Interval
  /** A count of snapshots to keep (`BackupConfig.retention`) or rules; absent: the repository's stored policy. */
  retention?: number | RetentionRules
  /** Remote locations the repository is copied to after each snapshot (`copy-done`, `failure` events). */
  remotes?: string[]
  /** Restore and check each database's newest snapshot this often, `"7d"` (`drill-passed`, `failure` events). */
  restoreDrill?: Interval
  cloudProvider?: CloudProvider
  cloudPath?: string
  /** How often the databases are looked at; default `1s`. */
  checkEvery?: Interval
}

/** The app's `BackupConfig`, as a configuration file gives it. */
export interface BackupConfig {
  enabled: boolean
  autoBackup: boolean
  schedule: 'daily' | 'weekly' | 'monthly' | 'manual'
  retention: number
  compression: boolean
  encryption: boolean
  cloudProvider?: CloudProvider
  cloudPath?: string
}

/** What `watchStart` watches with: the app's configuration, or a configuration file (`null`: `~/.lumina/backup.toml`). */
export type WatchSource = { config: WatchConfig } | { file: string | null }

/** The payload of {@link WATCH_EVENT}: the library's `WatchEvent`, in order, `stopped` last. */
export type WatchEvent =
  | { event: 'started'; databases: string[] }
  | {
      event: 'snapshot-taken'
      db: string
      /** The snapshot's id (hex). */
      snapshot: string
      trigger: 'schedule' | 'change'
      /** Bytes it added to the repository. */
      new_bytes: number
      /** Snapshots retention removed after it. */
      forgotten: number
    }
  | { event: 'skipped-unchanged'; db: string; trigger: 'schedule' | 'change' }
  | {
      event: 'copy-done'
      remote: string
      /** Snapshots this copy sent. */
      copied: number
      /** Snapshots it removed there (forgotten here). */
      removed: number
      bytes_sent: number
    }
  | {
      event: 'drill-passed'
      db: string
      /** The snapshot restored and checked (short id). */
      snapshot: string
      /** What was checked, one line each. */
      checked: string[]
    }
  | {
      event: 'failure'
      db: string | null
      remote: string | null
      /** `open`, `snapshot`, `retention`, `copy`, `restore-drill`. */
      operation: string
      message: string
      /** Failures of this database (or remote) in a row. */
      consecutive: number
      /** Seconds until it is tried again. */
      retry_in: number
    }
  | { event: 'notice'; message: string }
  | {
      event: 'stopped'
      /** A snapshot under way was abandoned (it recorded nothing). */
      abandoned: boolean
    }

export interface WatchStatus {
  running: boolean
  /** `config`, or the configuration file's path; null before the first start. */
  source: string | null
  /** The configuration it runs (or last ran) with. */
  config: WatchConfig | null
  /** The last event concerning each database, by its path. */
  lastEvents: Record<string, WatchEvent>
  lastEvent: WatchEvent | null
}

/** What `configCheck` found in a valid configuration file. */
export interface ConfigCheck {
  path: string
  /** `enabled`; `watchStart` from this file refuses to start when false. */
  enabled: boolean
  config: WatchConfig
  backupConfig: BackupConfig
  /** Keys the plugin does not act on (`hooks.*`, `webhook`: `lumina-backup watch` runs those). */
  ignored: string[]
}

/**
 * Starts the watcher (one per app: a second start rejects with kind
 * `WatchRunning`). Resolves with the configuration it runs with. A bad value
 * rejects with kind `Config` and its `key`; a bad file also with its `line`.
 * `passphrase` is for an encrypted repository the plugin does not hold open.
 */
export async function watchStart(
  source: WatchSource,
  options: { passphrase?: string } = {}
): Promise<WatchConfig> {
  return await invoke('plugin:lumina-backup|watch_start', { source, ...options })
}

/**
 * Stops the watcher, abandoning a snapshot under way (it records nothing);
 * resolves after its `stopped` event was emitted. False if none ran.
 */
export async function watchStop(): Promise<boolean> {
  return await invoke('plugin:lumina-backup|watch_stop')
}

/** Whether the watcher runs, its configuration and last events. */
export async function watchStatus(): Promise<WatchStatus> {
  return await invoke('plugin:lumina-backup|watch_status')
}

/** The configuration the watcher runs (or last ran) with; null before the first start. */
export async function watchConfig(): Promise<WatchConfig | null> {
  return await invoke('plugin:lumina-backup|watch_config')
}

/**
 * Checks a configuration file: `text` (named `path` in errors), else the file
 * at `path`, else `~/.lumina/backup.toml`. Rejects with kind `Config`, its
 * `path`, `line` and `key`.
 */
export async function configCheck(
  options: { text?: string; path?: string } = {}
): Promise<ConfigCheck> {
  return await invoke('plugin:lumina-backup|config_check', options)
}

/** Calls `cb` with each watcher event, in order; resolves to the function that stops listening. */
export async function onWatchEvent(cb: (event: WatchEvent) => void): Promise<UnlistenFn> {
  return await listen<WatchEvent>(WATCH_EVENT, (event) => {
    cb(event.payload)
  })
}
