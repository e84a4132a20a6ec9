# syntax=docker/dockerfile:1
# Two images from one build:
#   docker build --target operator  -t ghcr.io/vmkernel/vm-operator:0.1.0 .
#   docker build --target vmkerneld -t ghcr.io/vmkernel/vmkerneld:0.1.0 .
# Base images are pinned to exact releases; renovate-style bumps change them here only.
# (.NET 10 ships no Debian images: the SDK and the operator use Ubuntu 24.04 images; vmkerneld is self-contained
# on Debian 12 so QEMU comes from Debian, the same packages the project is tested with.)

FROM mcr.microsoft.com/dotnet/sdk:10.0.100-noble AS build
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY src/ src/
COPY crds/ crds/
# The NuGet cache is a build cache mount: packages are fetched once per builder, not once per source edit.
RUN --mount=type=cache,target=/root/.nuget/packages \
    dotnet publish src/Operator/Operator.csproj -c Release -o /out/operator \
 && dotnet publish src/NodeDaemon/NodeDaemon.csproj -c Release -r linux-x64 --self-contained -o /out/vmkerneld

# The operator: no shell, no package manager, non-root (the chiseled image's "app" user, uid 1654).
FROM mcr.microsoft.com/dotnet/aspnet:10.0.0-noble-chiseled AS operator
WORKDIR /app
COPY --from=build /out/operator /app
USER 1654:1654
EXPOSE 8080 8081
ENTRYPOINT ["dotnet", "/app/vm-operator.dll"]

# vmkerneld: QEMU and the host tools it drives. Runs as root in a privileged pod (devices, bridges, nftables,
# cgroups); QEMU drops to the unprivileged vmkernel-qemu user.
FROM debian:12.11-slim AS vmkerneld
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      qemu-system-x86 qemu-utils ovmf iproute2 nftables dnsmasq-base kmod ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vmkernel-qemu
COPY --from=build /out/vmkerneld /opt/vmkerneld
EXPOSE 7443 9464
USER 0:0
ENTRYPOINT ["/opt/vmkerneld/vmkerneld", "--qemu-user", "vmkernel-qemu"]
