# Declared plugins: one `outpost plugin install` per plugin, with the declared flags,
# in a oneshot unit that follows the daemon; invalid declarations fail with a message.
{
  evalConfig ? import ./eval-config.nix { },
  extraModules ? [ ],
}:
let
  t = import ./testlib.nix;
  evalWith =
    outpost:
    evalConfig {
      config.services.outpost = {
        enable = true;
      }
      // outpost;
      inherit extraModules;
    };
  pluginsUnit = config: config.systemd.services.outpost-plugins;
  script = config: (pluginsUnit config).script;
  # What the plugins package installs (nixos/packages.nix).
  components = "${builtins.storeDir}/00000000000000000000000000000000-outpost-plugins-0.1.0/lib/outpost/plugins";
  blocklist = "${components}/outpost_plugin_blocklist.wasm";
  ttlFloor = "${components}/outpost_plugin_ttl_floor.wasm";

  declared = evalWith {
    plugins = {
      ads = {
        component = blocklist;
        hook = "query-policy";
        configFile = "/etc/outpost/blocked.txt";
        order = 10;
        onError = "fail-closed";
      };
      ttl-floor = {
        component = ttlFloor;
        hook = "record-transform";
        configText = "60\n";
        enable = false;
      };
    };
  };
  # Any file will do: it is named, not read.
  fromPathLiteral = evalWith {
    plugins.local = {
      component = ./testlib.nix;
      hook = "query-policy";
    };
  };
  onWildcard =
    listen:
    evalWith {
      settings.admin.listen = listen;
      plugins.ads = {
        component = blocklist;
        hook = "query-policy";
      };
    };
  bothConfigs = evalWith {
    plugins.ads = {
      component = blocklist;
      hook = "query-policy";
      configText = "ads.example.\n";
      configFile = "/etc/outpost/blocked.txt";
    };
  };
  badName = evalWith {
    plugins."Ads!" = {
      component = blocklist;
      hook = "query-policy";
    };
  };
  badHook = evalWith {
    plugins.ads = {
      component = blocklist;
      hook = "pre-query";
    };
  };
in
t.all [
  (t.check "no plugins, no plugins unit" (
    !((evalWith { }).systemd.services ? outpost-plugins)
  ) "systemd.services.outpost-plugins exists")
  (t.noFailedAssertions "declared plugins pass their assertions" declared)

  (t.hasInfix "a plugin is installed with its declared flags"
    "/bin/outpost plugin install ${blocklist} --name ads --hook query-policy --order 10 --on-error fail-closed --config-file /etc/outpost/blocked.txt --admin 127.0.0.1:8053 --data-dir /run/credentials/outpost-plugins.service"
    (script declared)
  )
  (t.hasInfix "defaults: order 0, fail-open" "--name ttl-floor --hook record-transform --order 0 --on-error fail-open" (
    script declared
  ))
  (t.hasInfix "enable = false installs it switched off" "-outpost-plugin-ttl-floor.conf --disabled --admin" (
    script declared
  ))
  (t.lacksInfix "an enabled plugin is not installed disabled" "blocked.txt --disabled" (script declared))
  (t.check "a path literal is installed from its copy in the store" (
    builtins.match ".*plugin install ${builtins.storeDir}/[0-9a-z]{32}-testlib[.]nix --name local .*" (
      script fromPathLiteral
    ) != null
  ) (script fromPathLiteral))
  (t.hasInfix "a refused install fails the unit" "exit 1" (script declared))
  (t.hasInfix "a wildcard IPv4 admin address is dialled on loopback" "--admin 127.0.0.1:9053 " (
    script (onWildcard "0.0.0.0:9053")
  ))
  (t.hasInfix "a wildcard IPv6 admin address is dialled on loopback" "--admin '[::1]:9053' " (
    script (onWildcard "[::]:9053")
  ))

  (t.eq "the unit runs once and stays active" {
    Type = "oneshot";
    RemainAfterExit = true;
  } { inherit ((pluginsUnit declared).serviceConfig) Type RemainAfterExit; })
  (t.contains "it waits for the daemon to be ready" "outpost.service" (pluginsUnit declared).after)
  (t.contains "it needs the daemon" "outpost.service" (pluginsUnit declared).requires)
  (t.contains "it restarts with the daemon" "outpost.service" (pluginsUnit declared).partOf)
  (t.contains "it starts with the daemon" "outpost.service" (pluginsUnit declared).wantedBy)
  (t.eq "the daemon's token is its only credential" [ "admin.token:/var/lib/outpost/admin.token" ] (
    pluginsUnit declared
  ).serviceConfig.LoadCredential)
  (t.eq "no capability" "" (pluginsUnit declared).serviceConfig.CapabilityBoundingSet)
  (t.eq "an unprivileged user" true (pluginsUnit declared).serviceConfig.DynamicUser)

  (t.assertionFails "configText and configFile together are refused" "set configText or configFile, not both" bothConfigs)
  (t.assertionFails "a name the daemon refuses is refused" "not a valid plugin name" badName)
  (t.throws "an unknown hook is a type error" badHook.services.outpost.plugins.ads.hook)
]
