//! `devstack init --from FILE`: Procfiles, compose files and process-compose files as their
//! projects document them, translated into a `devstack.toml` that passes `devstack check`, with
//! what could not be translated in comments and in warnings on stderr.

use crate::common::{BIN, free_port};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Out {
    code: i32,
    stderr: String,
}

fn devstack(dir: &Path, args: &[&str]) -> Out {
    // What the importer sees of the machine is the same on every one: no installed servers.
    let path = if args.contains(&"init") {
        "/nonexistent".into()
    } else {
        std::env::var_os("PATH").unwrap_or_default()
    };
    devstack_with_path(dir, args, &path)
}

fn devstack_with_path(dir: &Path, args: &[&str], path: &std::ffi::OsStr) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        // What the importer sees of the environment is the same on every machine.
        .env_clear()
        .env("PATH", path)
        .env("HOME", "/home/dev")
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr),
    }
}

/// A project folder named `shop` (the stack's name in the snapshots) holding these files.
fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    (tmp, dir)
}

/// A string in the written TOML, by its dotted path.
fn field(toml: &str, path: &str) -> String {
    let mut v: toml::Value = toml::from_str(toml).unwrap();
    for part in path.split('.') {
        v = v
            .get(part)
            .unwrap_or_else(|| panic!("no {path} in\n{toml}"))
            .clone();
    }
    v.as_str().unwrap().to_string()
}

/// `init --from FILE` succeeds; the config it wrote passes `check`; its text and the stderr.
fn translate(dir: &Path, file: &str) -> (String, String) {
    let out = devstack(dir, &["init", "--from", file]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let toml = std::fs::read_to_string(dir.join("devstack.toml")).unwrap();
    let check = devstack(dir, &["check"]);
    assert_eq!(check.code, 0, "{}\n{toml}", check.stderr);
    (toml, out.stderr)
}

// ---- Procfile ----

#[test]
fn procfile_rails_with_release_worker_and_env() {
    let (_tmp, dir) = project(&[
        (
            "Procfile",
            "# Heroku runs release before the new dynos start\n\
             release: bundle exec rails db:migrate\n\
             web: bundle exec puma -C config/puma.rb\n\
             worker: bundle exec sidekiq -C config/sidekiq.yml\n",
        ),
        (
            ".env",
            "RAILS_ENV=development\nREDIS_URL=redis://localhost:6379/0\n",
        ),
        (".gitignore", "/log/*\n"),
    ]);
    let (toml, stderr) = translate(&dir, "Procfile");
    insta::assert_snapshot!(toml);
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(stderr.contains("wrote"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
        "/log/*\n.devstack/\n"
    );
    // The plan: release first, as a one-shot task the others wait for; .env read by devstack.
    let plan = devstack(&dir, &["check"]).stderr;
    assert!(plan.contains("1. release (one-shot task)"), "{plan}");
    assert!(plan.contains("after: release (completed)"), "{plan}");
}

#[test]
fn procfile_every_process_gets_a_port_as_foreman_gives_it() {
    let (_tmp, dir) = project(&[(
        "Procfile",
        "worker: node worker.js\n\
         web: node server.js\n\
         api: node api.js --port $PORT\n\
         docs: npx http-server docs -p ${PORT}\n",
    )]);
    let (toml, stderr) = translate(&dir, "Procfile");
    insta::assert_snapshot!(toml);
    assert!(!stderr.contains("warning:"), "{stderr}");
    // 5000 + 100 × the place in the file, $PORT in the command or not.
    for (name, port) in [
        ("worker", 5000),
        ("web", 5100),
        ("api", 5200),
        ("docs", 5300),
    ] {
        assert!(
            toml.contains(&format!("[services.{name}]\nrun = ")),
            "{toml}"
        );
        let v: toml::Value = toml::from_str(&toml).unwrap();
        assert_eq!(
            v["services"][name]["port"].as_integer(),
            Some(port),
            "{name}"
        );
    }
}

#[test]
fn procfile_an_app_reading_port_in_its_code_serves_and_a_worker_that_never_listens_is_ready() {
    let (_tmp, dir) = project(&[(
        "Procfile",
        "app: python3 -c 'import http.server as h, os; h.HTTPServer((\"127.0.0.1\", int(os.environ[\"PORT\"])), h.SimpleHTTPRequestHandler).serve_forever()'\n\
         worker: sleep 300\n",
    )]);
    let (toml, _) = translate(&dir, "Procfile");
    // (Not named `web`, which got a port before every process did.)
    let (app, worker) = (free_port(), free_port());
    let toml = toml
        .replace("port = 5000", &format!("port = {app}"))
        .replace("port = 5100", &format!("port = {worker}"));
    std::fs::write(dir.join("devstack.toml"), &toml).unwrap();
    let mut stack = crate::common::Stack::at(&dir);
    stack.start(&["up"]);
    stack.wait_ready(30);
    assert_eq!(crate::common::http_status(app, "/"), 200);
    let worker = stack
        .services()
        .unwrap()
        .into_iter()
        .find(|s| s["name"] == "worker")
        .unwrap();
    assert_eq!(worker["state"], "running", "{worker}");
    stack.stop();
}

#[test]
fn procfile_dev_with_bad_and_duplicate_lines_warns_and_keeps_them_as_comments() {
    let (_tmp, dir) = project(&[(
        "Procfile.dev",
        "web: python manage.py runserver 0.0.0.0:$PORT\n\
         celery: celery -A proj worker -l info --concurrency=${CELERY_CONCURRENCY}\n\
         beat: celery -A proj beat\n\
         celery: celery -A proj worker\n\
         this is not a process line\n\
         # assets: run `npm run watch` by hand\n",
    )]);
    let (toml, stderr) = translate(&dir, "Procfile.dev");
    insta::assert_snapshot!(toml);
    assert!(
        stderr.contains(
            "warning: Procfile.dev: line 4: `celery` is defined twice; the first one is kept"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: Procfile.dev: line 5: not a `name: command` line"),
        "{stderr}"
    );
    assert!(
        toml.contains("# line 5: not a `name: command` line, left out: this is not a process line")
    );
    // A comment under the last process is kept too, at the top.
    assert!(
        toml.contains("\n# assets: run `npm run watch` by hand\n"),
        "{toml}"
    );
    // `${VAR}` is left to the shell, as foreman does, so `check` needs no such variable.
    assert!(
        toml.contains("--concurrency=$${CELERY_CONCURRENCY}"),
        "{toml}"
    );
}

#[test]
fn init_from_refuses_to_overwrite_without_force() {
    let (_tmp, dir) = project(&[("Procfile", "web: ruby app.rb -p $PORT\n")]);
    std::fs::write(dir.join("devstack.toml"), "# mine\n").unwrap();
    let out = devstack(&dir, &["init", "--from", "Procfile"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("devstack.toml")).unwrap(),
        "# mine\n"
    );
    let out = devstack(&dir, &["init", "--from", "Procfile", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let toml = std::fs::read_to_string(dir.join("devstack.toml")).unwrap();
    assert!(toml.contains("run = \"ruby app.rb -p $PORT\""), "{toml}");
}

#[test]
fn a_folder_without_config_suggests_translating_what_it_has() {
    let (_tmp, dir) = project(&[("Procfile", "web: ruby app.rb -p $PORT\n")]);
    for args in [&[][..], &["up"][..]] {
        let out = devstack(&dir, args);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("`devstack init --from Procfile` translates the Procfile here"),
            "{}",
            out.stderr
        );
    }
    for file in ["docker-compose.yml", "process-compose.yaml"] {
        let (_tmp, dir) = project(&[(file, "services: {}\n")]);
        let out = devstack(&dir, &[]);
        assert!(
            out.stderr.contains(&format!(
                "`devstack init --from {file}` translates the {file} here"
            )),
            "{}",
            out.stderr
        );
    }
    // Nothing to translate: only the starter is suggested.
    let (_tmp2, empty) = project(&[]);
    let out = devstack(&empty, &["up"]);
    assert!(out.stderr.contains("`devstack init` writes a starter one"));
    assert!(!out.stderr.contains("--from"), "{}", out.stderr);
}

#[test]
fn a_file_in_another_folder_keeps_its_paths() {
    let (_tmp, dir) = project(&[
        ("ops/Procfile", "web: ruby app.rb -p $PORT\n"),
        ("ops/.env", "A=1\n"),
        (
            "deploy/compose.yaml",
            "services:\n  api:\n    build: ../api\n    command: make run\n    env_file: api.env\n",
        ),
        ("deploy/api.env", "B=2\n"),
        ("api/Makefile", "run:\n"),
    ]);
    let (toml, _) = translate(&dir, "ops/Procfile");
    assert_eq!(field(&toml, "services.web.cwd"), "ops");
    assert_eq!(field(&toml, "stack.env_file"), "ops/.env");
    let out = devstack(&dir, &["init", "--force", "--from", "deploy/compose.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let toml = std::fs::read_to_string(dir.join("devstack.toml")).unwrap();
    assert_eq!(field(&toml, "services.api.cwd"), "deploy/../api");
    assert_eq!(field(&toml, "stack.env_file"), "deploy/api.env");
    let check = devstack(&dir, &["check"]);
    assert_eq!(check.code, 0, "{}\n{toml}", check.stderr);
}

#[test]
fn an_unknown_format_is_refused() {
    let (_tmp, dir) = project(&[("notes.txt", "hello world\n")]);
    let out = devstack(&dir, &["init", "--from", "notes.txt"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not a Procfile"), "{}", out.stderr);
    assert!(!dir.join("devstack.toml").exists());
}

// ---- compose ----

const SHOP_COMPOSE: &str = r#"name: shop
services:
  db:
    image: postgres:16-alpine
    environment:
      POSTGRES_PASSWORD: secret
      POSTGRES_DB: shop
    ports:
      - "5432:5432"
    volumes:
      - pgdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 5s
      timeout: 3s
      retries: 5
  redis:
    image: redis:7
    ports: ["6379:6379"]
  migrate:
    build: ./api
    command: ["npm", "run", "migrate"]
    environment:
      - DATABASE_URL=postgres://postgres:secret@db:5432/shop
  api:
    build:
      context: ./api
      dockerfile: Dockerfile.dev
    command: npm run dev
    environment:
      DATABASE_URL: postgres://postgres:secret@db:5432/shop
      REDIS_URL: redis://redis:6379
      PORT: 3000
      LOG_LEVEL: ${LOG_LEVEL:-info}
      API_KEY: ${API_KEY}
      SENTRY_DSN: ${SENTRY_DSN}
      CACHE_DIR: ${HOME}/.cache/shop
    ports:
      - "3000:3000"
    depends_on:
      db:
        condition: service_healthy
        restart: true
      redis:
        condition: service_started
      migrate:
        condition: service_completed_successfully
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:3000/health"]
      interval: 10s
      timeout: 5s
      retries: 3
      start_period: 30s
    develop:
      watch:
        - action: sync
          path: ./api/src
          target: /app/src
        - action: rebuild
          path: ./api/package.json
        - action: sync+restart
          path: ./api/config
          target: /app/config
          ignore:
            - local/
  worker:
    build: ./api
    command: node worker.js --queue "$${QUEUE:-default}"
    depends_on:
      api:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
  web.frontend:
    build: ./web
    command: sh -c "npm install && npm run dev -- --host 0.0.0.0"
    ports:
      - "8080:5173"
    depends_on:
      - api
    restart: unless-stopped
    develop:
      watch:
        - action: rebuild
          path: ./web/src
          ignore:
            - "**/*.test.ts"
volumes:
  pgdata:
"#;

#[test]
fn compose_with_healthchecks_conditions_and_develop_watch() {
    let (_tmp, dir) = project(&[
        ("compose.yaml", SHOP_COMPOSE),
        (".env", "API_KEY=dev-key\n"),
        ("api/package.json", "{}"),
        ("web/package.json", "{}"),
    ]);
    let (toml, stderr) = translate(&dir, "compose.yaml");
    insta::assert_snapshot!(toml);
    for w in [
        "warning: compose.yaml: top-level `volumes` is not translated",
        "warning: compose.yaml: service db: image postgres:16-alpine runs in a container",
        "warning: compose.yaml: service db: not translated (container settings): volumes",
        "warning: compose.yaml: service api: depends on `db` (healthy), which is commented out",
        "warning: compose.yaml: service api: SENTRY_DSN: `${SENTRY_DSN}` is defined in no .env",
        "warning: compose.yaml: service web.frontend: ports: published on host port 8080",
        "warning: compose.yaml: service web.frontend: renamed `web.frontend` to `web-frontend`",
    ] {
        assert!(stderr.contains(w), "{w}\n{stderr}");
    }
    // A variable the .env defines is read from it, through the stack's env_file.
    assert!(toml.contains("env_file = \".env\""), "{toml}");
    assert!(toml.contains("API_KEY = \"${API_KEY}\""), "{toml}");
    // One set where `init` runs is read from devstack's environment.
    assert_eq!(
        field(&toml, "services.api.env.CACHE_DIR"),
        "${HOME}/.cache/shop"
    );
    // The migration others wait to complete is a one-shot task; the commented-out database
    // runs locally with its usual command.
    assert!(
        toml.contains("[services.migrate]\nbuild = \"npm run migrate\""),
        "{toml}"
    );
    assert!(
        toml.contains("# run = \"postgres -D .data/postgres -p 5432 -k /tmp\""),
        "{toml}"
    );
    assert!(
        toml.contains("# run = \"redis-server --port 6379\""),
        "{toml}"
    );
    assert!(
        toml.contains("depends_on = { api = \"healthy\", migrate = \"completed\" }"),
        "{toml}"
    );
}

const RAILS_COMPOSE: &str = r#"version: "3.9"
services:
  db:
    image: postgres
    volumes:
      - ./tmp/db:/var/lib/postgresql/data
    environment:
      POSTGRES_PASSWORD: password
  redis:
    image: "redis:alpine"
  web:
    build: .
    command: bash -c "rm -f tmp/pids/server.pid && bundle exec rails s -p 3000 -b '0.0.0.0'"
    volumes:
      - .:/myapp
    ports:
      - "3000-3001:3000-3001"
    env_file: .env.development
    environment:
      - DATABASE_HOST=db
      - REDIS_URL=redis://redis:6379/1
      - RAILS_LOG_TO_STDOUT
    depends_on:
      - db
      - redis
    stdin_open: true
    tty: true
  sidekiq:
    build: .
    command: bundle exec sidekiq
    env_file:
      - .env.development
      - .env.sidekiq
    depends_on:
      - db
      - redis
"#;

#[test]
fn compose_rails_classic_with_env_files_and_list_dependencies() {
    let (_tmp, dir) = project(&[
        ("docker-compose.yml", RAILS_COMPOSE),
        (".env.development", "RAILS_ENV=development\n"),
        (".env.sidekiq", "SIDEKIQ_CONCURRENCY=5\n"),
    ]);
    let (toml, stderr) = translate(&dir, "docker-compose.yml");
    insta::assert_snapshot!(toml);
    assert!(toml.contains("env_file = \".env.development\""), "{toml}");
    assert!(toml.contains("DATABASE_HOST = \"127.0.0.1\""), "{toml}");
    for w in [
        "service web: not translated (container settings): volumes, stdin_open, tty",
        "service sidekiq: env_file .env.sidekiq is not loaded",
        "service web: ports 3000-3001:3000-3001: a range; devstack knows one port per service, the first",
        "service web: depends on `db` (started), which is commented out",
    ] {
        assert!(stderr.contains(w), "{w}\n{stderr}");
    }
    // bash -c SCRIPT stays a bash command, quoted for sh.
    assert_eq!(
        field(&toml, "services.web.run"),
        r#"bash -c "rm -f tmp/pids/server.pid && bundle exec rails s -p 3000 -b '0.0.0.0'""#
    );
}

const DJANGO_COMPOSE: &str = r#"x-app: &app
  build:
    context: .
  environment: &env
    DJANGO_SETTINGS_MODULE: proj.settings
    CELERY_BROKER_URL: amqp://guest:guest@rabbitmq:5672//
  restart: on-failure:3

services:
  rabbitmq:
    image: rabbitmq:3-management
    ports:
      - "5672:5672"
      - "15672:15672"
  web:
    <<: *app
    entrypoint: ["/app/docker-entrypoint.sh"]
    command: ["gunicorn", "proj.wsgi", "--bind", "0.0.0.0:$PORT", "--log-level", "debug"]
    environment:
      <<: *env
      PORT: "8000"
    ports:
      - target: 8000
        published: 8000
    healthcheck:
      test: curl -fs http://localhost:$$PORT/healthz || exit 1
      interval: 1m30s
      start_interval: 2s
    stop_signal: SIGINT
    stop_grace_period: 1m30s
  celery:
    <<: *app
    command: celery -A proj worker -l INFO
    healthcheck:
      test: ["NONE"]
    depends_on:
      rabbitmq:
        condition: service_healthy
  flower:
    <<: *app
    command: celery -A proj flower
    profiles: [debug]
    depends_on:
      celery:
        condition: service_healthy
    expose:
      - "5555"
  external:
    image: mycorp/legacy-billing:2.1
    ports:
      - "9090:9090"
networks:
  default:
    name: proj
"#;

#[test]
fn compose_django_with_anchors_entrypoints_profiles_and_unknown_images() {
    let (_tmp, dir) = project(&[("compose.yml", DJANGO_COMPOSE)]);
    let (toml, stderr) = translate(&dir, "compose.yml");
    insta::assert_snapshot!(toml);
    // Entrypoint then command; `$PORT` stays live for the shell (double quotes).
    assert_eq!(
        field(&toml, "services.web.run"),
        r#"/app/docker-entrypoint.sh gunicorn proj.wsgi --bind "0.0.0.0:$PORT" --log-level debug"#
    );
    assert!(
        toml.contains("stop_signal = \"INT\"\ngrace = \"1m30s\""),
        "{toml}"
    );
    assert!(toml.contains("[services.flower]"), "{toml}");
    assert!(toml.contains("autostart = false"), "{toml}");
    assert!(
        toml.contains("cmd = \"curl -fs http://localhost:$PORT/healthz || exit 1\""),
        "{toml}"
    );
    for w in [
        "warning: compose.yml: top-level `networks` is not translated",
        "service web: restart: at most 3 retries has no counterpart",
        "service rabbitmq: ports 15672:15672: devstack knows one port per service",
        "service celery: depends on `rabbitmq` (healthy), which is commented out",
        "service flower: waited for `celery` to be healthy, but it has no health probe here",
        "service external: no command: it runs image mycorp/legacy-billing:2.1's command",
        "service external: renamed `external` to `external-svc`",
    ] {
        assert!(stderr.contains(w), "{w}\n{stderr}");
    }
}

#[test]
fn a_server_image_whose_program_is_installed_runs_it() {
    let compose = r#"services:
  cache:
    image: redis:7-alpine
    ports: ["6380:6379"]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
  db:
    image: postgres:16
  web:
    command: ["sh", "-c", "exec serve"]
    depends_on: [cache, db]
"#;
    let (_tmp, dir) = project(&[("compose.yaml", compose)]);
    // `redis-server` and `redis-cli` installed here; no postgres.
    let bin = dir.parent().unwrap().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for program in ["redis-server", "redis-cli"] {
        let file = bin.join(program);
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let out = devstack_with_path(&dir, &["init", "--from", "compose.yaml"], bin.as_os_str());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let toml = std::fs::read_to_string(dir.join("devstack.toml")).unwrap();
    assert_eq!(
        field(&toml, "services.cache.run"),
        "redis-server --port 6379"
    );
    assert_eq!(
        field(&toml, "services.cache.health.cmd"),
        "redis-cli -p 6379 ping"
    );
    assert!(toml.contains("# [services.db]"), "{toml}");
    assert!(
        out.stderr.contains("image postgres:16 runs in a container"),
        "{}",
        out.stderr
    );
    let check = devstack(&dir, &["check"]);
    assert_eq!(check.code, 0, "{}\n{toml}", check.stderr);
}

#[test]
fn a_yaml_syntax_error_names_file_line_and_column() {
    let (_tmp, dir) = project(&[(
        "compose.yaml",
        "services:\n  web:\n    command: [\"a\", \"b\"\n    ports: x\n",
    )]);
    let out = devstack(&dir, &["init", "--from", "compose.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.starts_with("compose.yaml:4:"), "{}", out.stderr);
    assert!(!dir.join("devstack.toml").exists());
}

// ---- process-compose ----

const PC_WEB: &str = r#"version: "0.5"
log_level: debug
log_location: /tmp/process-compose.log

environment:
  - "APP_ENV=development"

processes:
  postgres:
    description: the database, in the foreground
    command: postgres -D .data/pg -p 5433 -k /tmp
    readiness_probe:
      exec:
        command: pg_isready -h 127.0.0.1 -p 5433
      initial_delay_seconds: 2
      period_seconds: 5
      timeout_seconds: 3
      failure_threshold: 10
    shutdown:
      signal: 2
      timeout_seconds: 20
    availability:
      restart: always

  migrate:
    command: "./bin/migrate --database postgres://127.0.0.1:5433/app"
    depends_on:
      postgres:
        condition: process_healthy
    availability:
      restart: "no"

  api:
    command: "go run ./cmd/api"
    working_dir: ./api
    environment:
      - "PORT=8080"
      - "DB_URL=postgres://127.0.0.1:5433/app"
      - "LOG_FORMAT=${LOG_FORMAT}"
    depends_on:
      migrate:
        condition: process_completed_successfully
    readiness_probe:
      http_get:
        host: 127.0.0.1
        scheme: http
        path: "/healthz"
        port: 8080
      initial_delay_seconds: 1
      period_seconds: 2
      timeout_seconds: 1
      success_threshold: 1
      failure_threshold: 3
    liveness_probe:
      http_get:
        host: 127.0.0.1
        path: "/livez"
        port: 8080
    availability:
      restart: on_failure
      backoff_seconds: 2
      max_restarts: 5

  frontend:
    command: "npm run dev"
    working_dir: ./web
    depends_on:
      api:
        condition: process_healthy
    availability:
      restart: on_failure
"#;

#[test]
fn process_compose_with_probes_availability_and_shutdown() {
    let (_tmp, dir) = project(&[
        ("process-compose.yaml", PC_WEB),
        (".env", "LOG_FORMAT=json\n"),
        ("api/go.mod", "module api\n"),
        ("web/package.json", "{}"),
    ]);
    let (toml, stderr) = translate(&dir, "process-compose.yaml");
    insta::assert_snapshot!(toml);
    assert_eq!(field(&toml, "services.api.health.http"), "/healthz");
    assert_eq!(field(&toml, "services.postgres.stop_signal"), "INT");
    assert_eq!(field(&toml, "services.postgres.grace"), "20s");
    assert_eq!(field(&toml, "services.postgres.health.start_period"), "2s");
    assert_eq!(
        field(&toml, "services.migrate.build"),
        "./bin/migrate --database postgres://127.0.0.1:5433/app"
    );
    assert_eq!(field(&toml, "services.api.env.LOG_FORMAT"), "${LOG_FORMAT}");
    assert_eq!(field(&toml, "env.APP_ENV"), "development");
    for w in [
        "warning: process-compose.yaml: top-level `log_level` is not translated",
        "warning: process-compose.yaml: service api: liveness_probe is not translated",
        "warning: process-compose.yaml: service api: availability backoff_seconds 2 has no counterpart",
        "warning: process-compose.yaml: service api: availability max_restarts 5 has no counterpart",
    ] {
        assert!(stderr.contains(w), "{w}\n{stderr}");
    }
}

const PC_WORKERS: &str = r#"version: "0.5"
processes:
  redis:
    command: redis-server --port 6380
    is_daemon: false
    ready_log_line: "Ready to accept connections"
  worker.default:
    command: "bundle exec sidekiq -q default"
    depends_on:
      redis:
        condition: process_log_ready
    shutdown:
      signal: 15
      timeout_seconds: 25
      command: "bundle exec sidekiqctl quiet"
    replicas: 2
  scheduler:
    command: "bundle exec clockwork clock.rb"
    disabled: true
    depends_on:
      worker.default:
        condition: process_started
  seed:
    command: "bundle exec rails db:seed"
    depends_on:
      redis:
        condition: process_started
  report:
    command: "bundle exec rake report"
    depends_on:
      seed:
        condition: process_completed
    availability:
      restart: exit_on_failure
"#;

#[test]
fn process_compose_workers_log_ready_disabled_and_completion() {
    let (_tmp, dir) = project(&[("process-compose.yml", PC_WORKERS)]);
    let (toml, stderr) = translate(&dir, "process-compose.yml");
    insta::assert_snapshot!(toml);
    assert_eq!(
        field(&toml, "services.redis.health.log"),
        "Ready to accept connections"
    );
    assert!(
        toml.contains("depends_on = { redis = \"healthy\" }"),
        "{toml}"
    );
    assert!(toml.contains("autostart = false"), "{toml}");
    assert_eq!(
        field(&toml, "services.seed.build"),
        "bundle exec rails db:seed"
    );
    for w in [
        "service worker.default: renamed `worker.default` to `worker-default`",
        "service worker.default: shutdown command `bundle exec sidekiqctl quiet` is not run",
        "service worker.default: not translated: replicas",
        "service report: depends_on seed: process_completed accepts any exit code",
        "service report: availability restart exit_on_failure",
    ] {
        assert!(stderr.contains(w), "{w}\n{stderr}");
    }
}

const PC_DAEMONS: &str = r#"processes:
  nginx:
    command: "nginx -c $PWD/nginx.conf"
    is_daemon: true
    shutdown:
      command: "nginx -s stop"
  app:
    command: "python -m app --port 9000"
    depends_on:
      nginx:
        condition: process_started
      cache:
        condition: process_healthy
    readiness_probe:
      http_get:
        host: localhost
        port: 9000
        path: ready
        scheme: https
      period_seconds: 0.5
  cache:
    command: memcached -p 11300
    readiness_probe:
      exec:
        command: "echo stats | nc 127.0.0.1 11300"
    is_tty: true
  docs:
    description: optional docs server
    disabled: true
"#;

#[test]
fn process_compose_daemons_https_probes_and_a_process_without_command() {
    let (_tmp, dir) = project(&[("pc.yaml", PC_DAEMONS)]);
    // Neither name says the format: the content does.
    let (toml, stderr) = translate(&dir, "pc.yaml");
    insta::assert_snapshot!(toml);
    assert_eq!(
        field(&toml, "services.app.health.http"),
        "http://localhost:9000/ready"
    );
    assert_eq!(field(&toml, "services.app.health.interval"), "500ms");
    assert!(toml.contains("# [services.docs]"), "{toml}");
    for w in [
        "service nginx: is_daemon: it forks into the background",
        "service app: readiness_probe scheme https",
        "service docs: no command",
    ] {
        assert!(stderr.contains(w), "{w}\n{stderr}");
    }
}

#[test]
fn a_process_compose_yaml_error_names_the_place() {
    let (_tmp, dir) = project(&[(
        "process-compose.yaml",
        "processes:\n  web:\n    command: x\n  - y\n",
    )]);
    let out = devstack(&dir, &["init", "--from", "process-compose.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("process-compose.yaml:4:3: did not find expected key"),
        "{}",
        out.stderr
    );
}

// ---- translated stacks run ----

#[test]
fn a_translated_procfile_runs_release_first_with_the_env_file() {
    let (_tmp, dir) = project(&[
        (
            "Procfile",
            "release: echo release >> order.txt\n\
             web: python3 -m http.server $PORT\n\
             worker: echo \"worker $GREETING\" >> order.txt && exec sleep 600\n",
        ),
        (".env", "GREETING=hi\n"),
    ]);
    let (toml, _) = translate(&dir, "Procfile");
    // On a free port here, instead of foreman's 5000.
    let toml = toml.replace("port = 5000", &format!("port = {}", free_port()));
    std::fs::write(dir.join("devstack.toml"), toml).unwrap();
    // Once the stack is up, until the worker has written its line (a process without a probe
    // is ready once spawned, before its shell has run anything).
    let out = devstack(
        &dir,
        &[
            "run",
            "--timeout",
            "60s",
            "--",
            "timeout",
            "60",
            "sh",
            "-c",
            "until grep -q worker order.txt; do sleep 0.05; done",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("order.txt")).unwrap(),
        "release\nworker hi\n"
    );
}

#[test]
fn a_translated_compose_file_runs_its_task_and_health_check() {
    let (_tmp, dir) = project(&[(
        "compose.yaml",
        r#"services:
  setup:
    image: alpine:3
    command: ["sh", "-c", "echo setup >> order.txt && echo ok > ready.txt"]
  app:
    image: alpine:3
    command: ["sh", "-c", "echo app >> order.txt && exec sleep 600"]
    healthcheck:
      test: ["CMD-SHELL", "grep -q app order.txt && test $$(cat ready.txt) = ok"]
      interval: 1s
    depends_on:
      setup:
        condition: service_completed_successfully
"#,
    )]);
    let (toml, _) = translate(&dir, "compose.yaml");
    assert_eq!(
        field(&toml, "services.app.health.cmd"),
        "grep -q app order.txt && test $(cat ready.txt) = ok"
    );
    let out = devstack(&dir, &["ci", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("order.txt")).unwrap(),
        "setup\napp\n"
    );
}

#[test]
fn compose_udp_ports_are_left_out_with_a_warning() {
    let (_tmp, dir) = project(&[(
        "compose.yaml",
        "services:\n\
         \x20 dns:\n\
         \x20   command: dnsmasq -k\n\
         \x20   ports: [\"5353:53/udp\"]\n\
         \x20 web:\n\
         \x20   command: serve --port 80\n\
         \x20   ports:\n\
         \x20     - target: 514\n\
         \x20       protocol: udp\n\
         \x20     - \"8080:80/tcp\"\n",
    )]);
    let (toml, stderr) = translate(&dir, "compose.yaml");
    let v: toml::Value = toml::from_str(&toml).unwrap();
    assert_eq!(v["services"]["dns"].get("port"), None, "{toml}");
    assert_eq!(
        v["services"]["web"]["port"].as_integer(),
        Some(80),
        "{toml}"
    );
    assert!(
        stderr.contains(
            "service dns: ports 5353:53/udp: udp, and devstack's proxy forwards TCP only"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("service web: ports (a long-form port): udp"),
        "{stderr}"
    );
}

/// Bounded, not timed: the importer once compiled a regex per value and service, which made
/// 500 services take most of a minute (an unoptimised build: many minutes).
#[test]
fn a_compose_file_of_500_services_imports() {
    use std::fmt::Write;
    let n = 500;
    let mut text = String::from("services:\n");
    for i in 0..n {
        let _ = writeln!(text, "  svc{i}:\n    command: ./run --port 8000");
        let _ = writeln!(
            text,
            "    ports: [\"{}:8000\"]\n    environment:",
            10000 + i
        );
        for j in 1..=5 {
            let _ = writeln!(text, "      URL_{j}: http://svc{}:8000/api", (i + j) % n);
        }
        if i > 0 {
            let _ = writeln!(text, "    depends_on: [svc{}]", i - 1);
        }
    }
    let (_tmp, dir) = project(&[("compose.yaml", &text)]);
    let mut child = Command::new(BIN)
        .args(["init", "--from", "compose.yaml"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("importing 500 services did not end in 120s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    let toml = std::fs::read_to_string(dir.join("devstack.toml")).unwrap();
    assert_eq!(
        field(&toml, "services.svc7.env.URL_1"),
        "http://127.0.0.1:8000/api"
    );
}
