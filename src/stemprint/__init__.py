"""stemprint: a headless mixing engine and stem-delivery toolkit.

Render a session's mix and every stem in one sample-accurate streaming pass, and prove the
package (stems null against the mix, levels measured against delivery profiles).
"""

__version__ = "0.1.0"
