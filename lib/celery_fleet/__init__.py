"""celery_fleet: the tested Python behind the fleet's Ansible filters (no Ansible import here).

Interface used by the roles through ``plugins/filter/celery_fleet.py`` (keep these names; a change
must be recorded here):

- ``worker | celery_fleet_worker`` -> ``workers.normalize_worker(worker) -> dict``
- ``worker | celery_fleet_worker_argv(app_module, celery_bin)``
  -> ``workers.worker_argv(worker, app_module, celery_bin) -> list[str]``
- ``argv | celery_fleet_systemd_cmdline`` -> ``workers.systemd_cmdline(argv) -> str``
- ``argv | celery_fleet_supervisor_cmdline`` -> ``workers.supervisor_cmdline(argv) -> str``
- ``worker | celery_fleet_stop_timeout(margin=30)`` -> ``workers.stop_timeout(worker, margin=30) -> int``
- ``workers | celery_fleet_pool_packages`` -> ``workers.pool_packages(workers) -> list[str]``
- ``workers_by_host | celery_fleet_validation_errors(queues, visibility_timeout, beat_hosts,
  broker_by_host=None)`` -> ``validation.validate_fleet(...) -> list[str]``
- added: ``worker | celery_fleet_worker_environment`` -> ``workers.worker_environment(worker)
  -> dict[str, str]`` (the worker's ``environment`` plus REMAP_SIGTERM when ``remap_sigterm`` is set)
- added: ``env | celery_fleet_systemd_environment`` -> ``workers.systemd_environment(env) -> list[str]``
  (one quoted ``KEY=value`` per ``Environment=`` line)
- added: ``env | celery_fleet_supervisor_environment`` -> ``workers.supervisor_environment(env) -> str``
  (the value of supervisord's ``environment=``; empty string for an empty mapping)

- added: ``hostname | celery_fleet_node_name(host)`` -> ``workers.node_name(hostname, host) -> str``
  (Celery's ``%h``/``%n``/``%d`` expansion of a worker's hostname field)
- added: ``workers_by_host | celery_fleet_live_errors(nodename_by_host, active_queues, stats,
  queues=None)`` -> ``live.live_errors(...) -> list[str]`` (the running fleet, as ``celery inspect
  --json active_queues`` / ``stats`` report it, compared with the declared workers)
- added: ``app | celery_fleet_retire_marker`` -> ``retire.marker_regex(app) -> str``,
  ``paths | celery_fleet_stale_services(app, manager, keep, kinds)`` -> ``retire.stale_services(...)
  -> list[dict]`` and ``run_tags | celery_fleet_retire_kinds`` -> ``retire.retire_kinds(...)
  -> list[str]`` (roles/celery_retire: which of an app's services a host no longer runs)

- added: ``env | celery_fleet_environment_split(manager="systemd")`` ->
  ``service.split_environment(env, manager) -> {"inline": {...}, "file": {...}}`` (which of a
  worker's variables stay in its unit and which go to its own environment file: secrets by name
  or value under systemd, everything under supervisord)
- added: ``env | celery_fleet_env_file`` -> ``service.env_file(env) -> str`` (the lines of an
  environment file systemd and sh read into the same bytes)
- added worker fields ``devices`` and ``proc_subset`` (``service.check_devices``); ``--purge`` and
  ``--discard`` refused in ``extra_args``; secret-looking ``environment`` variables accepted (they
  go to the worker's environment file), only the broker and backend URLs refused.

- added: ``visibility_timeout | celery_fleet_transport_options(key_prefix="")`` ->
  ``broker.transport_options(...) -> {"broker": {...}, "backend": {...}}`` (what the fleet's entry
  module merges into every service's transport options)
- added (issue 16): ``host | celery_fleet_broker_connection(port, db, user, password, sentinels,
  master_name, sentinel_password, visibility_timeout, key_prefix)`` -> ``broker.connection(...) ->
  {"broker_url", "result_backend", "transport_options": {"broker", "backend"}, "settings"}`` (one
  builder for direct Redis and Sentinel, used by roles/celery_app and roles/flower)
- changed (issue 18, TLS): ``celery_fleet_broker_connection`` also takes ``tls=False, tls_ca_file,
  tls_cert_file, tls_key_file``: with ``tls`` the URLs are ``rediss://`` and ``settings`` holds
  Celery's ``broker_use_ssl`` and ``redis_backend_use_ssl`` (CA verification required); without it
  the result is unchanged. No role passes ``tls`` yet.
- changed (TLS through Sentinel): ``celery_fleet_broker_connection`` with ``tls`` and ``sentinels``
  no longer raises: the URLs stay ``sentinel://``, ``settings`` holds the Sentinel settings and
  ``broker_use_ssl`` / ``redis_backend_use_ssl``, and both ``sentinel_kwargs`` also hold ``ssl:
  true`` and the same ``ssl_*`` keys (``broker.sentinel_tls_kwargs``).
- changed: ``clients | celery_fleet_tls_fleet_errors(broker, servers=None)``
  -> ``broker.tls_fleet_errors(...) -> list[str]``: with ``servers`` (a Sentinel topology) every data
  node and Sentinel host is compared, not ``broker``
- added: ``data_nodes | celery_fleet_tls_servers(sentinel_hosts, hostvars)`` -> ``broker.tls_servers(...)
  -> dict[str, dict]`` (those hosts' ``redis_tls_enabled``, ``redis_port`` and whether each runs a Sentinel)
- added: ``prefix | celery_fleet_redis_acl_rulesets(db, commands)`` -> ``broker.acl_rulesets(...)
  -> dict[str, str]`` (the Celery ACL rule sets; no prefix: every key and channel)
- added: ``prefix_by_host | celery_fleet_scoping_errors(visibility_by_host, broker_prefix=None)`` ->
  ``broker.scoping_errors(...) -> list[str]`` (key prefixes and visibility timeouts of the clients,
  and whether they agree with the broker's ACL scoping)

- added: ``logs_by_service | celery_fleet_log_reports(context, lines=15)`` -> ``diagnose.report(...)
  -> list[str]`` (a service that did not come up: its last log lines and, for a known cause, what
  to change) and ``status | celery_fleet_service_up_for(seconds)`` -> ``diagnose.up_for(...) -> bool``
  (whether `systemctl show`/`supervisorctl status` output says the service has been up that long)
- added: ``service | celery_fleet_log_command(manager, lines=60)`` -> ``diagnose.log_command(...)
  -> list[str]`` (the argv that prints the end of a service's log, journal or supervisord)
- added: ``workers | celery_fleet_worker_services(layout, restart=())`` ->
  ``supervise.worker_services(...) -> list[dict]`` (the service descriptions roles/celery_service
  writes for a host's present workers: units, programs, restart flags)

- added (issue 15: every input rule in Python): ``inputs | celery_fleet_redis_problems(host,
  packaged=None, system)`` -> ``redis_rules.redis_problems(...)``, ``inputs |
  celery_fleet_flower_problems(host)`` -> ``flower_rules.flower_problems(...)``, ``inputs |
  celery_fleet_beat_problems(host)`` -> ``beat_rules.beat_problems(...)``, ``inputs |
  celery_fleet_app_problems(host)`` -> ``app_rules.app_problems(...)``, ``inputs |
  celery_fleet_process_manager_problems(host)`` -> ``inputs.process_manager_problems(...)``, each
  ``-> list[str]`` over a mapping of the role's variables (name -> value, unset names absent);
  ``entries | celery_fleet_fleet_entries_errors(queues, fleet_hosts)`` ->
  ``validation.validate_entries(...)`` (the fleet check of roles/celery_worker's validate step);
  for playbooks/validate.yml: ``role_groups | celery_fleet_roles_of_host(group_names)``,
  ``roles | celery_fleet_argument_specs(roles_dir)``, ``specs | celery_fleet_input_problems(provided,
  host)`` and ``registered | celery_fleet_argspec_problems(host)`` (``inventory.py``); ``inputs |
  celery_fleet_flower_environment(db, broker_env)`` -> ``flower.flower_environment(...) -> dict[str,
  str]`` (Flower's environment file, in order).

- added (issue 16, Sentinel): ``settings | celery_fleet_sentinel_topology_problems(data_nodes,
  sentinels, clients=None)`` -> ``redis_rules.sentinel_topology_problems(...) -> list[str]`` (the
  Sentinel topology, checked once); ``declared | celery_fleet_sentinel_quorum(sentinels)`` ->
  ``sentinel.quorum(...) -> int``; ``answers | celery_fleet_sentinel_master(sentinels, fallback)`` ->
  ``sentinel.current_master(...) -> {address, port, source}`` (majority of the Sentinels' answers,
  the initial master only when none answered); ``hosts | celery_fleet_peer_addresses(hostvars)`` ->
  ``sentinel.peer_addresses(...) -> dict[str, str]``.

- added (issue 18, redis_dir): ``config | celery_fleet_redis_configured_dir(default)`` ->
  ``redis_data.configured_dir(...) -> str``, ``info | celery_fleet_redis_keyspace_keys`` ->
  ``redis_data.keyspace_keys(...) -> int | None``, ``old_dir | celery_fleet_redis_data_dir_problems(
  new_dir, old_keys, old_files, new_files, start_empty=False, service, user)`` ->
  ``redis_data.data_dir_problems(...) -> list[str]`` (a changed redis_dir that would leave the data behind).

- added (issue 18, live ACL changes): ``old_acl_text | celery_fleet_redis_acl_live_commands(new_acl_text)``
  -> ``redis_acl.live_commands(...) -> list[str]`` (ACL SETUSER/DELUSER lines that turn the users of
  the previous ACL file into the new one's, for Redis 7.0 whose ACL LOAD drops every ACL client).

- added (issue 18, replication password live): ``words | celery_fleet_redis_cli_line`` ->
  ``redis_acl.cli_line(words) -> str`` (one redis-cli stdin line, every word quoted: the live
  ``CONFIG SET masterauth`` sends the password there, never in argv).

Recorded changes to the agreed signatures:

- Added filters (nothing removed or renamed): ``celery_fleet_worker_environment``,
  ``celery_fleet_systemd_environment``, ``celery_fleet_supervisor_environment``. Quoting an
  ``Environment=`` value with ``celery_fleet_systemd_cmdline`` would double its ``$`` (systemd
  expands ``$VAR`` in Exec lines only), and supervisord parses ``environment=`` with other rules
  than ``command=``.

- ``validate_fleet``'s ``visibility_timeout`` also accepts a mapping inventory host -> seconds (or
  None), since the Redis transport option is set per host in the app's environment file; the
  redelivery happens at the shortest timeout among the clients of one broker. An int (or None,
  meaning kombu's default of 3600 s) still applies to every host.

Every error is a ``FleetError`` (a ``ValueError``); its message names the worker, the host when known,
the field and what is allowed, e.g. ``worker 'io' on host 'w1': field 'pool': 'fork' is not one of
prefork, gevent, eventlet, threads, solo``. The filter file turns it into ``AnsibleFilterError``.

- added: ``name | celery_fleet_app_layout(home=None, state_dir=None, log_dir=None)`` ->
  ``layout.app_layout(...) -> dict`` (the app's paths, user, ``<home>/bin/celery`` and service
  names: the one place they are built) and ``stdout | celery_fleet_inspect_reply`` ->
  ``layout.inspect_reply(stdout) -> dict`` (``celery inspect --json`` output as node -> reply,
  empty when nothing answered)
- added: ``entries | celery_fleet_verify_nodes``, ``entries | celery_fleet_verify_errors(active_queues,
  stats, queues=None)`` and ``entries | celery_fleet_silent_services(active_queues)`` -> ``live``'s
  functions of the same names (one live check over the hosts of a batch or of the whole fleet;
  an entry per host: host, nodename, workers, nodes, services, manager, visibility_timeout, key_prefix)
- added: ``workers | celery_fleet_worker_env_files(manager)`` -> ``supervise.worker_env_files``
  (which workers get an environment file of their own, and its variables), ``services |
  celery_fleet_systemd_services`` -> ``supervise.systemd_services`` (known and running-enabled
  services from ``service_facts``), ``workers | celery_fleet_restart_names(only=None)`` ->
  ``workers.restart_names`` (present workers, limited to ``only``)
- added (issue 17, monitoring): ``hosts | celery_fleet_scrape_targets(hostvars, monitoring_host,
  port_field, default_port)``, ``inputs | celery_fleet_prometheus_problems(host)``, ``inputs |
  celery_fleet_redis_exporter_problems(host)``, ``hosts | celery_fleet_monitoring_problems(flower_hosts,
  redis_hosts, hostvars, sentinel_hosts)`` and the helpers ``address | celery_fleet_host_port(port)``,
  ``address | celery_fleet_local_address``, ``queues | celery_fleet_queue_keys(prefix)``, ``entries |
  celery_fleet_monitoring_queue_nodes(queue)``, ``settings | celery_fleet_exporter_address(host,
  monitoring_hosts)`` and ``hosts | celery_fleet_exporter_targets(hostvars, monitoring_hosts)`` (where
  an exporter listens and is scraped), ``hosts | celery_fleet_sentinel_scrape_targets(hostvars,
  monitoring_hosts)`` (the Sentinels through each host's exporter), ``targets |
  celery_fleet_sentinel_static_configs`` (their Prometheus static configs), ``port |
  celery_fleet_sentinel_address`` (a host's own Sentinel, as its exporter reaches it), ``entries |
  celery_fleet_exporter_password_map(user)`` (the exporter's REDIS_PASSWORD_FILE) -> ``monitoring_rules``
- added (issue 19): ``hostvars[host] | celery_fleet_inputs_signature(trees, listings)`` ->
  ``hoststate.inputs_signature`` (sha256 of a worker host's inputs: its variables templated, the
  facts the roles read, the code under ``trees``, the file list under ``listings``)
- moved (issue 19): ``celery_fleet_inputs_signature`` is a lookup of roles/celery_worker
  (``lookup('celery_fleet_inputs_signature', trees=..., listings=...)``), no longer a filter of
  ``hostvars[host]``: a variable read through ``hostvars`` is templated without ``hostvars``, so one
  built from another host's variables entered the signature as its error, whatever its value.
- replaced (issue 19): ``celery_fleet_roles_of_host``, ``celery_fleet_argument_specs``,
  ``celery_fleet_input_problems`` and ``celery_fleet_argspec_problems`` (two tasks per host of
  playbooks/validate.yml) by ``inventory.fleet_input_problems(hostvars, hosts, role_groups,
  roles_dir, defaults=None) -> list[str]`` (every host in one task; the same messages), which the
  play calls through its lookup playbooks/lookup_plugins/celery_fleet_fleet_input_problems.py (each
  host's variables templated in its own context, with ``hostvars``).
- added (issue 19): ``entries | celery_fleet_file_specs`` -> ``files.file_specs(entries) -> list[dict]``
  (a role's files as library/celery_fleet_files.py takes them: ``content`` base64-encoded, entries
  with ``present: false`` left out); ``register | celery_fleet_file_result(path)`` ->
  ``files.file_result(register, path) -> dict`` (one file's part of its register, as a ``copy``
  result: changed, dest, backup_file)
- changed (issue 19): ``result | celery_fleet_flower_written_files(specs)`` -> ``flower.written_files(
  result, specs) -> dict`` reads the register of roles/flower's celery_fleet_files task (``written``,
  ``restore``, ``remove``, ``backups``: paths and modes only) instead of copy and template results
"""

from celery_fleet.errors import FleetError, Problem
from celery_fleet.validation import validate_fleet
from celery_fleet.workers import (
    normalize_worker,
    pool_packages,
    stop_timeout,
    supervisor_cmdline,
    supervisor_environment,
    systemd_cmdline,
    systemd_environment,
    worker_argv,
    worker_environment,
)

__all__ = [
    "FleetError",
    "Problem",
    "normalize_worker",
    "pool_packages",
    "stop_timeout",
    "supervisor_cmdline",
    "supervisor_environment",
    "systemd_cmdline",
    "systemd_environment",
    "validate_fleet",
    "worker_argv",
    "worker_environment",
]
