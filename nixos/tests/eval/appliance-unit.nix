# The appliance unit: one capability, the hardening baseline, notify/watchdog/reload,
# and what the daemon is started with.
{
  evalConfig ? import ./eval-config.nix { },
  extraModules ? [ ],
}:
let
  t = import ./testlib.nix;
  config = evalConfig {
    config.services.outpost.enable = true;
    inherit extraModules;
  };
  unit = config.systemd.services.outpost;
  service = unit.serviceConfig;

  hardening = {
    DynamicUser = true;
    StateDirectory = "outpost";
    StateDirectoryMode = "0700";
    UMask = "0077";
    NoNewPrivileges = true;
    PrivateUsers = false;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectHostname = true;
    ProtectClock = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    LockPersonality = true;
    # wasmtime maps compiled plugins executable.
    MemoryDenyWriteExecute = false;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    RemoveIPC = true;
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
      "AF_NETLINK"
    ];
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    SystemCallArchitectures = "native";
  };
  lifecycle = {
    Type = "notify";
    WatchdogSec = "30s";
    Restart = "on-failure";
  };
in
t.all (
  [
    (t.eq "only CAP_NET_BIND_SERVICE is bounded" [ "CAP_NET_BIND_SERVICE" ] service.CapabilityBoundingSet)
    (t.eq "only CAP_NET_BIND_SERVICE is ambient" [ "CAP_NET_BIND_SERVICE" ] service.AmbientCapabilities)
    (t.eq "Type" lifecycle.Type service.Type)
    (t.eq "WatchdogSec" lifecycle.WatchdogSec service.WatchdogSec)
    (t.eq "Restart" lifecycle.Restart service.Restart)
    (t.hasInfix "ExecReload sends SIGHUP" "/bin/kill -HUP $MAINPID" service.ExecReload)
    (t.hasInfix "ExecStart serves" "/bin/outpost serve --data-dir /var/lib/outpost" service.ExecStart)
    (t.hasInfix "ExecStart reads the rendered settings" "--config /etc/outpost/outpost.toml" service.ExecStart)
    (t.lacksInfix "no join ticket unless asked" "--join-file" service.ExecStart)
    (t.eq "no credentials unless asked" [ ] service.LoadCredential)
    (t.eq "no ExecStartPre unless asked" [ ] service.ExecStartPre)
    (t.contains "started at boot" "multi-user.target" unit.wantedBy)
    (t.contains "before name lookups" "nss-lookup.target" unit.before)
    (t.check "settings changes reload" (unit.reloadTriggers != [ ]) "reloadTriggers is empty")
    (t.noFailedAssertions "a plain enable passes its assertions" config)
    (t.eq "a plain enable warns nothing" [ ] (t.ourWarnings config))
    (t.contains "the admin CLI is installed" config.services.outpost.package config.environment.systemPackages)
  ]
  ++ map (key: t.eq "serviceConfig.${key}" hardening.${key} (service.${key} or "(unset)")) (
    builtins.attrNames hardening
  )
)
