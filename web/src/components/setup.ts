/**
 * "Set me up": copy-paste snippets for this server and repository (docker, podman, skopeo, helm,
 * oras, Terraform via ORAS, a Kubernetes pull secret, berth push). They never hold a secret:
 * where one is needed they read it from a variable the reader sets.
 */
import { h } from '../dom';
import { copyButton } from '../components';
import { imageRef } from '../host';

export function setupSnippets(owner: string, repo: string, username: string | undefined): HTMLElement {
  const host = location.host;
  // `images.acme.com` for a domain mapped to this very repository: IMAGE sits at its root.
  const ns = imageRef(`${owner}/${repo}/x`).replace(/\/x$/, '');
  const user = username ?? `${owner}/${repo}`;
  const groups: [string, string[]][] = [
    ['Docker', [`echo "$BERTH_TOKEN" | docker login ${host} -u ${user} --password-stdin`, `docker tag myapp:1.0 ${ns}/myapp:1.0`, `docker push ${ns}/myapp:1.0`, `docker pull ${ns}/myapp:1.0`]],
    ['Podman', [`echo "$BERTH_TOKEN" | podman login ${host} -u ${user} --password-stdin`, `podman push myapp:1.0 ${ns}/myapp:1.0`, `podman pull ${ns}/myapp:1.0`]],
    ['skopeo', [`skopeo copy --dest-creds ${user}:"$BERTH_TOKEN" docker-archive:myapp.tar docker://${ns}/myapp:1.0`, `skopeo copy --src-creds ${user}:"$BERTH_TOKEN" docker://${ns}/myapp:1.0 oci:./myapp:1.0`]],
    ['Helm', [`echo "$BERTH_TOKEN" | helm registry login ${host} -u ${user} --password-stdin`, `helm push mychart-0.1.0.tgz oci://${ns}/charts`, `helm pull oci://${ns}/charts/mychart --version 0.1.0`]],
    ['ORAS', [`echo "$BERTH_TOKEN" | oras login ${host} -u ${user} --password-stdin`, `oras push ${ns}/artifacts:v1 ./dist/app.zip`, `oras pull ${ns}/artifacts:v1`, `oras attach --artifact-type application/spdx+json ${ns}/myapp:1.0 ./sbom.spdx.json`]],
    ['Terraform module (ORAS)', [`tar czf module.tgz -C ./my-module . && oras push ${ns}/terraform/my-module:1.0.0 module.tgz:application/vnd.terraform.module.v1+tar+gzip`, `oras pull ${ns}/terraform/my-module:1.0.0 && tar xzf module.tgz -C ./modules/my-module`]],
    [
      'Kubernetes',
      [
        `kubectl create secret docker-registry berth-pull --docker-server=${host} --docker-username=${owner}/${repo} --docker-password="$BERTH_TOKEN"`,
        `# in the pod spec:\nimagePullSecrets:\n  - name: berth-pull`,
      ],
    ],
    ['berth push (docker save archive)', [`docker save myapp:1.0 -o myapp.tar`, `berth push --server ${location.protocol}//${host} ${owner}/${repo}/myapp:1.0 myapp.tar`]],
  ];
  return h(
    'section',
    { class: 'setup', 'aria-labelledby': 'setup-h' },
    h('h2', { id: 'setup-h' }, 'Set me up'),
    h(
      'p',
      { class: 'muted' },
      username
        ? `Sign in as ${username} with an API key (API keys page) or your password in $BERTH_TOKEN. Customers use an entitlement token with the username ${owner}/${repo} (or token).`
        : `Use an entitlement token of ${owner}/${repo} in $BERTH_TOKEN (username ${owner}/${repo}, or token).`,
    ),
    groups.map(([title, cmds]) =>
      h('details', { class: 'snippet' }, h('summary', {}, title), cmds.map((c) => h('div', { class: 'cmd' }, h('pre', {}, h('code', {}, c)), copyButton(c, `${title} command`)))),
    ),
  );
}
