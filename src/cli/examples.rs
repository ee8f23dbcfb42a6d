//! The `Examples:` block at the end of each command's `--help` (clap's `after_help`).

pub const DEVSTACK: &str = "\
Examples:
  devstack                     # the dashboard on the stack of devstack.toml here (or attach to it)
  devstack up --headless       # prefixed log lines instead of the dashboard
  devstack -f ../shop/devstack.toml check
  devstack up -d && devstack ps
  devstack help restart        # the help of one command";

pub const UP: &str = "\
Examples:
  devstack up                  # every service with autostart
  devstack up api              # api and everything it depends on
  devstack up --headless       # prefixed lines instead of the dashboard
  devstack up -d               # in the background; output in .devstack/devstack.out
  devstack up -d --wait --timeout 2m
  devstack up --faults slow-users   # [faults.slow-users] of devstack.toml set once ready";

pub const ATTACH: &str = "\
Examples:
  devstack up -d && devstack attach   # q then detaches (d) or stops the stack (s)";

pub const PS: &str = "\
Examples:
  devstack ps
  devstack ps --json | jq -r '.services[] | select(.state != \"running\") | .name'";

pub const START: &str = "\
Examples:
  devstack start worker        # and what it depends on; returns once it is ready
  devstack start api worker";

pub const STOP: &str = "\
Examples:
  devstack stop worker         # returns once it has stopped
  devstack stop api worker";

pub const RESTART: &str = "\
Examples:
  devstack restart api         # returns once the new process is ready
  devstack restart --all       # every service, in dependency order";

pub const REBUILD: &str = "\
Examples:
  devstack rebuild api         # exit 1 with the build's last lines if it fails (the old process stays)";

pub const KILL: &str = "\
Examples:
  devstack kill api            # SIGKILL its process group; its restart policy then applies";

pub const LOGS: &str = "\
Examples:
  devstack logs                # the last 100 lines of every service, merged in time order
  devstack logs -f api worker  # follow two services
  devstack logs -n 1000 api | grep -i error
  devstack logs --file ../shop/devstack.toml";

pub const TRAFFIC: &str = "\
Examples:
  devstack traffic             # the caller -> callee table, busiest first
  devstack traffic -f          # each request as it ends, with its #ID
  devstack traffic -f --errors # only the failed ones
  devstack traffic show 42     # inside request #42: heads, bodies, timings
  devstack traffic --json | jq '.edges[0]'";

pub const TRAFFIC_SHOW: &str = "\
Examples:
  devstack traffic show 42                 # heads, bodies (JSON pretty-printed), timings
  devstack traffic show 42 --json | jq .response.body";

pub const TRAFFIC_CURL: &str = "\
Examples:
  devstack traffic curl 42                 # a curl command line sending #42 again
  AUTHORIZATION='Bearer t0k3n' sh -c \"$(devstack traffic curl 42)\"";

pub const TRAFFIC_REPLAY: &str = "\
Examples:
  devstack traffic replay 42          # send #42 again; its answer beside the original's
  devstack traffic replay 42 --edit   # change it in $EDITOR first";

pub const TRAFFIC_EXPORT: &str = "\
Examples:
  devstack traffic export --har requests.har           # every service's kept requests
  devstack traffic export --har - api | jq '.log.entries | length'";

pub const FAULT: &str = "\
Examples:
  devstack fault add 'orders->users' latency=200ms jitter=50ms   # quote an edge: `>` is the shell's
  devstack fault add users error=503 rate=0.3    # every caller of users, 3 requests in 10
  devstack fault ls
  devstack fault clear";

pub const FAULT_ADD: &str = "\
Examples:
  devstack fault add 'orders->users' latency=200ms jitter=50ms
  devstack fault add users error=503 body=down first=3   # the first 3 requests to users fail
  devstack fault add 'external->api' reset rate=0.1 for=30s
  devstack fault add users timeout method=POST path=/orders";

pub const FAULT_LS: &str = "\
Examples:
  devstack fault ls
  devstack fault ls --json | jq -r '.faults[] | select(.spent | not) | .text'";

pub const FAULT_RM: &str = "\
Examples:
  devstack fault rm 2          # its number, as `fault add` and `fault ls` show it";

pub const FAULT_CLEAR: &str = "\
Examples:
  devstack fault clear         # every fault removed: the stack as it was";

pub const FAULT_APPLY: &str = "\
Examples:
  devstack fault apply slow-users   # every fault of [faults.slow-users] in devstack.toml set
  devstack fault clear              # and removed again";

pub const INIT: &str = "\
Examples:
  devstack init                # devstack.toml with one web service, then: devstack
  devstack init --force        # replace the devstack.toml here
  devstack init --from Procfile                 # a Procfile (and its .env) translated
  devstack init --from docker-compose.yml       # a compose file: processes, not containers
  devstack init --from process-compose.yaml     # untranslatable fields: comments + warnings";

pub const DOWN: &str = "\
Examples:
  devstack down                # stop the stack running here; returns once it has stopped
  devstack down --volumes      # and remove the named volumes of its image services";

pub const USE: &str = "\
Examples:
  devstack use users remote    # callers of users now reach its url (the local process stops)
  devstack use users local     # back to the local process; returns once it is ready";

pub const WATCH: &str = "\
Examples:
  devstack watch api manual    # stop rebuilding api on file changes
  devstack watch api auto      # rebuild it on changes again";

pub const CHECK: &str = "\
Examples:
  devstack check               # the plan: start order, commands, cwd, ports
  devstack -f ci/devstack.toml check";

pub const SCHEMA: &str = "\
Examples:
  devstack schema > .devstack-schema.json
  # then, as the first line of devstack.toml (taplo, Even Better TOML):
  #:schema ./.devstack-schema.json";

pub const COMPLETIONS: &str = "\
Examples:
  source <(devstack completions bash)     # in ~/.bashrc
  source <(devstack completions zsh)      # in ~/.zshrc, after compinit
  devstack completions fish > ~/.config/fish/completions/devstack.fish";

pub const CI: &str = "\
Examples:
  devstack ci                  # exit 0 once everything is ready, 1 naming what failed
  devstack ci api --timeout 2m
  devstack ci -q               # devstack's own lines only, and a failure's last lines";

pub const RUN: &str = "\
Examples:
  devstack run -- cargo test --test e2e     # with API_URL etc. in its environment
  devstack run api db --timeout 2m -- ./integration.sh
  devstack run -- sh -c 'curl \"$WEB_URL/health\"'   # the stack's variables in CMD's own words
  devstack run --faults slow-users -- cargo test   # against [faults.slow-users] of devstack.toml

CMD is run as given, without a shell: your shell expands `$WEB_URL` in `devstack run -- curl
$WEB_URL/` before devstack sets it (to nothing: `curl /`); quote it in `sh -c '...'` as above.";

pub const MCP: &str = "\
Examples:
  claude mcp add devstack -- devstack mcp   # register it with Claude Code (run in the project)
  devstack -f ~/shop/devstack.toml mcp      # the stack of another folder
  {\"mcpServers\": {\"devstack\": {\"command\": \"devstack\", \"args\": [\"mcp\"]}}}
                                            # the same in an agent's JSON config

It speaks on stdin/stdout (nothing else is written there); start the stack with `devstack up -d`.";

pub const MAN: &str = "\
Examples:
  devstack man | man -l -      # read it now
  devstack man > ~/.local/share/man/man1/devstack.1   # then `man devstack`
  devstack man up | man -l -   # the page of one command";
