# The Lite unit: no capability on its default port, the token as a credential, the
# same hardening as the appliance, and the two ways of becoming the resolver.
{
  evalConfig ? import ./eval-config.nix { },
  extraModules ? [ ],
}:
let
  t = import ./testlib.nix;
  evalWith =
    lite: other:
    evalConfig {
      config.services.outpost-lite = {
        enable = true;
        appliances = [
          "wss://dns1.site.internal:8054"
          "wss://dns2.site.internal:8054"
        ];
        tokenFile = "/run/secrets/outpost-lite-token";
      }
      // lite;
      # The rest of the laptop's configuration, as a module of its own.
      extraModules = extraModules ++ [ other ];
    };
  service = config: config.systemd.services.outpost-lite.serviceConfig;
  # resolved's Domains is a list before the `settings` rework, a string after it.
  domains =
    config:
    let
      value = config.services.resolved.domains or config.services.resolved.settings.Resolve.Domains;
    in
    if builtins.isList value then value else [ value ];

  plain = evalWith { } { };
  withResolved = evalWith {
    resolver.enable = true;
    upstreams = [ "9.9.9.9" ];
  } { services.resolved.enable = true; };
  withoutResolved = evalWith {
    resolver.enable = true;
    upstreams = [ "9.9.9.9" ];
  } { };
  noUpstream = evalWith { resolver.enable = true; } { };
  highPortNoResolved = evalWith {
    resolver.enable = true;
    upstreams = [ "9.9.9.9" ];
    listen = "127.0.0.1:5354";
  } { };
  noToken = evalWith { tokenFile = null; } { };
  dohByAddress = evalWith {
    resolver.enable = true;
    upstreams = [
      "https://9.9.9.9/dns-query#dns.quad9.net"
      "https://[2620:fe::fe]:443/dns-query#dns.quad9.net"
      "tls://9.9.9.9:853#dns.quad9.net"
    ];
    upstreamCaFile = "/etc/site-ca.pem";
  } { services.resolved.enable = true; };
  dohByName = evalWith {
    resolver.enable = true;
    upstreams = [ "https://dns.quad9.net/dns-query" ];
  } { services.resolved.enable = true; };

  hardening = {
    DynamicUser = true;
    StateDirectory = "outpost-lite";
    StateDirectoryMode = "0700";
    UMask = "0077";
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    RestrictNamespaces = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = false;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
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
in
t.all (
  [
    (t.eq "no capability on port 5354 (bounding)" "" (service plain).CapabilityBoundingSet)
    (t.eq "no capability on port 5354 (ambient)" "" (service plain).AmbientCapabilities)
    (t.eq "the token is a credential" [ "token:/run/secrets/outpost-lite-token" ] (service plain).LoadCredential)
    (t.hasInfix "started through the token wrapper" "outpost-lite-start" (service plain).ExecStart)
    (t.lacksInfix "no token path in argv" "/run/secrets" (service plain).ExecStart)
    (t.lacksInfix "no token in the unit's environment" "OUTPOST_LITE_TOKEN" (builtins.toJSON (service plain)))
    (t.noFailedAssertions "a plain client passes its assertions" plain)
    (t.eq "a plain client is nobody's resolver" [ ] (plain.networking.nameservers or [ ]))

    (t.eq "with resolved: resolved forwards to port 5354" [ "127.0.0.1:5354" ] withResolved.networking.nameservers)
    (t.eq "with resolved: every domain goes to it" [ "~." ] (domains withResolved))
    (t.eq "with resolved: still no capability" "" (service withResolved).CapabilityBoundingSet)
    (t.noFailedAssertions "with resolved: assertions pass" withResolved)

    (t.eq "without resolved: it listens on port 53" "127.0.0.1:53" withoutResolved.services.outpost-lite.listen)
    (t.eq "without resolved: it is the nameserver" [ "127.0.0.1" ] withoutResolved.networking.nameservers)
    (t.eq "without resolved: only CAP_NET_BIND_SERVICE" [ "CAP_NET_BIND_SERVICE" ] (service withoutResolved).CapabilityBoundingSet)
    (t.noFailedAssertions "without resolved: assertions pass" withoutResolved)

    (t.assertionFails "the resolver needs an upstream" "forward to itself" noUpstream)
    (t.assertionFails "resolv.conf cannot name port 5354" "resolv.conf has no port" highPortNoResolved)
    (t.assertionFails "a token file is required" "token file" noToken)
    (t.noFailedAssertions "a resolver may use DoH by address" dohByAddress)
    (t.assertionFails "a resolver's DoH host must be an address" "write a DoH upstream's host as an IP" dohByName)
  ]
  ++ map (key: t.eq "serviceConfig.${key}" hardening.${key} ((service plain).${key} or "(unset)")) (
    builtins.attrNames hardening
  )
)
