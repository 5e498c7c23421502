//! `schedule install` / `schedule remove`: a user service that runs
//! `lumina-backup watch --config FILE` from login on (the watcher itself keeps
//! the schedule, catches up after a sleep, and stops cleanly on SIGTERM):
//!
//! - Linux: a systemd user service,
//!   `$XDG_CONFIG_HOME/systemd/user/lumina-backup-watch.service`, then
//!   `systemctl --user daemon-reload` and `enable --now`;
//! - macOS: a launchd agent, `~/Library/LaunchAgents/com.lumina.backup.watch.plist`,
//!   then `launchctl load -w`;
//! - Windows: a Task Scheduler definition (at logon, restarted on failure),
//!   `%LOCALAPPDATA%\lumina-backup\watch-task.xml`, then `schtasks /Create /XML`.
//!
//! `--print` shows the definition and installs nothing; `--no-enable` writes
//! the file without calling systemctl, launchctl or schtasks.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, Subcommand, ValueEnum};

use lumina_backup::Error;

use super::common::{warn, Ctx};

/// The unit, agent and task names.
const SYSTEMD_UNIT: &str = "lumina-backup-watch.service";
const LAUNCHD_LABEL: &str = "com.lumina.backup.watch";
const TASK_NAME: &str = "lumina-backup watch";

/// `schedule` subcommands.
#[derive(Subcommand, Debug)]
pub(super) enum ScheduleCommand {
    /// Install (and start) a user service running `watch --config FILE`.
    Install(Target),
    /// Stop and remove it.
    Remove(Target),
}

/// Which service manager, and how.
#[derive(Args, Debug)]
pub(super) struct Target {
    /// The configuration file `watch` reads (default ~/.lumina/backup.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the definition; install or remove nothing.
    #[arg(long)]
    print: bool,
    /// Write or remove the file only; do not call systemctl, launchctl or schtasks.
    #[arg(long)]
    no_enable: bool,
    /// The service manager (default: this system's).
    #[arg(long, value_enum)]
    system: Option<System>,
}

/// A service manager.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum System {
    /// systemd (Linux).
    Systemd,
    /// launchd (macOS).
    Launchd,
    /// Task Scheduler (Windows).
    Windows,
}

impl System {
    fn current() -> System {
        if cfg!(target_os = "macos") {
            System::Launchd
        } else if cfg!(windows) {
            System::Windows
        } else {
            System::Systemd
        }
    }
}

fn env_path(k: &str) -> Option<PathBuf> {
    std::env::var_os(k)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> Result<PathBuf, Error> {
    env_path("HOME").ok_or_else(|| {
        Error::invalid_input("HOME is not set: the service file's folder is unknown")
    })
}

/// Where the definition is written.
fn file_path(system: System) -> Result<PathBuf, Error> {
    Ok(match system {
        System::Systemd => env_path("XDG_CONFIG_HOME")
            .map_or_else(|| home().map(|h| h.join(".config")), Ok)?
            .join("systemd")
            .join("user")
            .join(SYSTEMD_UNIT),
        System::Launchd => home()?
            .join("Library")
            .join("LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist")),
        System::Windows => env_path("LOCALAPPDATA")
            .ok_or_else(|| {
                Error::invalid_input("LOCALAPPDATA is not set: the task file's folder is unknown")
            })?
            .join("lumina-backup")
            .join("watch-task.xml"),
    })
}

/// The command line the service runs: this program, `watch`, `--config`, and
/// `--repo` when given.
fn command(ctx: &Ctx, config: &Path) -> Result<Vec<String>, Error> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::internal(format!("cannot find this program's path: {e}")))?;
    let mut args = vec![
        exe.display().to_string(),
        "watch".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    if let Some(r) = &ctx.global.repo {
        args.push("--repo".into());
        args.push(r.clone());
    }
    Ok(args)
}

/// One argument of systemd's ExecStart: quoted, with `\`, `"` and `%` escaped.
fn systemd_quote(a: &str) -> String {
    let s = a
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{s}\"")
}

fn xml_escape(a: &str) -> String {
    a.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The service definition for `system` running `args`.
pub(super) fn definition(system: System, args: &[String]) -> String {
    match system {
        System::Systemd => format!(
            "[Unit]\n\
             Description=lumina-backup watch: snapshots of SQLite databases\n\
             \n\
             [Service]\n\
             Type=simple\n\
             ExecStart={}\n\
             Restart=on-failure\n\
             RestartSec=30\n\
             KillSignal=SIGTERM\n\
             TimeoutStopSec=30\n\
             Nice=10\n\
             \n\
             [Install]\n\
             WantedBy=default.target\n",
            args.iter()
                .map(|a| systemd_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        System::Launchd => {
            let items: String = args
                .iter()
                .map(|a| format!("\t\t<string>{}</string>\n", xml_escape(a)))
                .collect();
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                 <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
                 <plist version=\"1.0\">\n\
                 <dict>\n\
                 \t<key>Label</key>\n\
                 \t<string>{LAUNCHD_LABEL}</string>\n\
                 \t<key>ProgramArguments</key>\n\
                 \t<array>\n\
                 {items}\
                 \t</array>\n\
                 \t<key>RunAtLoad</key>\n\
                 \t<true/>\n\
                 \t<key>KeepAlive</key>\n\
                 \t<dict>\n\
                 \t\t<key>SuccessfulExit</key>\n\
                 \t\t<false/>\n\
                 \t</dict>\n\
                 \t<key>ProcessType</key>\n\
                 \t<string>Background</string>\n\
                 </dict>\n\
                 </plist>\n"
            )
        }
        System::Windows => {
            let (exe, rest) = args
                .split_first()
                .map_or(("", &[][..]), |(e, r)| (e.as_str(), r));
            let quoted: Vec<String> = rest
                .iter()
                .map(|a| format!("\"{}\"", a.replace('"', "\\\"")))
                .collect();
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n\
                 <Task version=\"1.2\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\n\
                 \x20 <RegistrationInfo>\n\
                 \x20   <Description>lumina-backup watch: snapshots of SQLite databases</Description>\n\
                 \x20 </RegistrationInfo>\n\
                 \x20 <Triggers>\n\
                 \x20   <LogonTrigger>\n\
                 \x20     <Enabled>true</Enabled>\n\
                 \x20   </LogonTrigger>\n\
                 \x20 </Triggers>\n\
                 \x20 <Principals>\n\
                 \x20   <Principal id=\"Author\">\n\
                 \x20     <LogonType>InteractiveToken</LogonType>\n\
                 \x20     <RunLevel>LeastPrivilege</RunLevel>\n\
                 \x20   </Principal>\n\
                 \x20 </Principals>\n\
                 \x20 <Settings>\n\
                 \x20   <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\n\
                 \x20   <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\n\
                 \x20   <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\n\
                 \x20   <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>\n\
                 \x20   <RestartOnFailure>\n\
                 \x20     <Interval>PT1M</Interval>\n\
                 \x20     <Count>999</Count>\n\
                 \x20   </RestartOnFailure>\n\
                 \x20   <Priority>7</Priority>\n\
                 \x20 </Settings>\n\
                 \x20 <Actions Context=\"Author\">\n\
                 \x20   <Exec>\n\
                 \x20     <Command>{}</Command>\n\
                 \x20     <Arguments>{}</Arguments>\n\
                 \x20   </Exec>\n\
                 \x20 </Actions>\n\
                 </Task>\n",
                xml_escape(exe),
                xml_escape(&quoted.join(" "))
            )
        }
    }
}

/// Runs a service manager's command; a failure is an error naming it.
fn call(program: &str, args: &[&str]) -> Result<(), Error> {
    let status = Command::new(program).args(args).status().map_err(|e| {
        Error::invalid_input(format!(
            "cannot run {program}: {e}; the file is written: enable it by hand, or use --no-enable"
        ))
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "`{program} {}` failed ({status})",
            args.join(" ")
        )))
    }
}

/// The file's bytes: UTF-16 with a byte-order mark for Task Scheduler, else UTF-8.
fn bytes_of(system: System, text: &str) -> Vec<u8> {
    if system == System::Windows {
        let mut b = vec![0xFF, 0xFE];
        b.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        b
    } else {
        text.as_bytes().to_vec()
    }
}

pub(super) fn run(ctx: &Ctx, what: ScheduleCommand) -> Result<(), Error> {
    let (install, t) = match what {
        ScheduleCommand::Install(t) => (true, t),
        ScheduleCommand::Remove(t) => (false, t),
    };
    let system = t.system.unwrap_or_else(System::current);
    if install {
        let config = t
            .config
            .clone()
            .unwrap_or_else(lumina_backup::ConfigFile::default_path);
        let config = std::fs::canonicalize(&config).unwrap_or(config);
        // The service would fail at every start with a bad file: check it now.
        lumina_backup::ConfigFile::load(&config)?;
        let text = definition(system, &command(ctx, &config)?);
        if t.print {
            print!("{text}");
            return Ok(());
        }
        let path = file_path(system)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating folder", dir, e))?;
        std::fs::write(&path, bytes_of(system, &text))
            .map_err(|e| Error::io("writing", &path, e))?;
        ctx.say(format!("wrote {}", path.display()));
        if !t.no_enable {
            let p = path.display().to_string();
            match system {
                System::Systemd => {
                    call("systemctl", &["--user", "daemon-reload"])?;
                    call("systemctl", &["--user", "enable", "--now", SYSTEMD_UNIT])?;
                }
                System::Launchd => call("launchctl", &["load", "-w", &p])?,
                System::Windows => {
                    call("schtasks", &["/Create", "/TN", TASK_NAME, "/XML", &p, "/F"])?
                }
            }
            ctx.say("enabled and started");
        }
    } else {
        let path = file_path(system)?;
        if t.print {
            ctx.say(format!("would remove {}", path.display()));
            return Ok(());
        }
        if !t.no_enable {
            let p = path.display().to_string();
            let r = match system {
                System::Systemd => call("systemctl", &["--user", "disable", "--now", SYSTEMD_UNIT]),
                System::Launchd => call("launchctl", &["unload", "-w", &p]),
                System::Windows => call("schtasks", &["/Delete", "/TN", TASK_NAME, "/F"]),
            };
            if let Err(e) = r {
                warn(&format!("{e}; removing the file anyway"));
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => ctx.say(format!("removed {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ctx.say(format!("{} was not installed", path.display()))
            }
            Err(e) => return Err(Error::io("removing", &path, e)),
        }
        if system == System::Systemd && !t.no_enable {
            let _ = call("systemctl", &["--user", "daemon-reload"]);
        }
    }
    Ok(())
}
