# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ProcGenie platform engineering
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The Azure authentication options (as azure.azcollection users know them) and the flexible server to act on.
    DOCUMENTATION = r'''
options:
  auth_source:
    description:
      - Where the Azure credentials come from, as in azure.azcollection.
      - V(auto) takes O(client_id), O(secret) and O(tenant) from the module parameters, then from the
        E(AZURE_CLIENT_ID), E(AZURE_SECRET) and E(AZURE_TENANT) environment variables, then from the O(profile) of
        C(~/.azure/credentials), and at last uses the Azure CLI's login.
      - V(env) uses the environment variables, V(credential_file) the profile of C(~/.azure/credentials) (keys
        C(subscription_id), C(client_id), C(secret), C(tenant), C(cloud_environment)), V(cli) the Azure CLI's login
        (C(az login)) and V(msi) the managed identity of the Azure host the module runs on (O(client_id) picks a
        user-assigned identity).
      - Falls back to the E(ANSIBLE_AZURE_AUTH_SOURCE) environment variable.
    type: str
    default: auto
    choices: [auto, cli, credential_file, env, msi]
  subscription_id:
    description:
      - The Azure subscription of the server. Falls back to E(AZURE_SUBSCRIPTION_ID), the credential file profile
        and, with the Azure CLI, its default subscription.
    type: str
  client_id:
    description:
      - Application (client) ID of the service principal; with O(auth_source=msi), the client ID of a user-assigned
        managed identity. See O(auth_source) for its fallbacks.
    type: str
  secret:
    description:
      - Client secret of the service principal. Never logged and never returned. See O(auth_source) for its fallbacks.
    type: str
  tenant:
    description:
      - Microsoft Entra tenant (directory) ID of the service principal. See O(auth_source) for its fallbacks.
    type: str
  cloud_environment:
    description:
      - The Azure cloud, V(AzureCloud) when not set. Either a name (V(AzureCloud), V(AzureChinaCloud),
        V(AzureUSGovernment)) or the https URL of an Azure Resource Manager endpoint, for Azure Stack Hub and other
        private clouds.
      - For a URL, the login endpoint and the token audience are read from C(<url>/metadata/endpoints), and
        Microsoft Entra instance discovery is turned off (azure-identity's C(disable_instance_discovery)).
      - Falls back to E(AZURE_CLOUD_ENVIRONMENT), then to the credential file profile's C(cloud_environment).
    type: str
  profile:
    description:
      - Profile (section) of C(~/.azure/credentials) to use. Falls back to E(AZURE_PROFILE), then V(default).
    type: str
  resource_group:
    description:
      - Resource group of the flexible server.
    type: str
  server_name:
    description:
      - Name of the Azure Database for PostgreSQL flexible server.
    type: str
notes:
  - Requests throttled by Azure (HTTP 429) or failing with 408, 500, 502, 503 or 504 are retried with exponential
    back-off, waiting at least as long as the C(Retry-After) header asks (azure-core's retry policy).
  - Certificate authorities for https are the system's, or those of the file E(REQUESTS_CA_BUNDLE) names.
requirements:
  - azure-mgmt-postgresqlflexibleservers >= 3.0 and azure-identity on the host that runs the module
'''

    # For modules that wait for long-running Azure operations.
    WAIT = r'''
options:
  timeout:
    description:
      - Seconds to wait for a long-running Azure operation. When it has not ended by then the module fails, and
        the operation goes on in Azure.
      - An operation that ends C(Failed) or C(Canceled) fails the module with Azure's error code and message.
    type: int
    default: 1800
'''
