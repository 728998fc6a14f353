//! A W3C WebDriver client for the console's browser tests: Chromium driven by `chromedriver`
//! (Debian packages `chromium` and `chromium-driver`), headless, over the WebDriver protocol's
//! JSON endpoints — sessions, navigation, elements, scripts, screenshots and printing to PDF.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromedriver`, from `RELAIS_TEST_CHROMEDRIVER` or the PATH.
pub fn chromedriver() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("RELAIS_TEST_CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.is_file())
    })
}

/// axe-core's script (`RELAIS_TEST_AXE`, or `.ci/node_modules/axe-core/axe.min.js` as
/// `.ci/run` installs it).
pub fn axe_script() -> Option<String> {
    let path = std::env::var("RELAIS_TEST_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(path).ok()
}

/// A running chromedriver.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
    _profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub async fn start(chromedriver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _profiles: tempfile::tempdir().expect("temp dir"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium window, accepting the hub's development certificate.
    pub async fn session(&self, chromium: &Path) -> Browser {
        let profile = tempfile::tempdir_in(self._profiles.path()).expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--lang=fr-FR", "--hide-scrollbars",
                         format!("--user-data-dir={}", profile.path().display())],
            }
        }}});
        let v = post(&self.http, &format!("{}/session", self.url), caps).await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        let b = Browser {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.url),
            _profile: profile,
        };
        b.call("timeouts", json!({"script": 60_000, "pageLoad": 60_000}))
            .await;
        b
    }
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Value {
    let r = http
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("webdriver {url}: {e}"));
    let v: Value = r.json().await.expect("webdriver JSON");
    if v["value"]["error"].is_string() {
        panic!("webdriver {url}: {}", v["value"]);
    }
    v["value"].clone()
}

/// One browser window.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn call(&self, path: &str, body: Value) -> Value {
        post(&self.http, &format!("{}/{path}", self.base), body).await
    }

    async fn get(&self, path: &str) -> Value {
        let v: Value = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver JSON");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call("url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.get("url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.get("source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.run("return document.body.innerText;", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn find(&self, css: &str) -> Element<'_> {
        let v = self
            .call("element", json!({"using": "css selector", "value": css}))
            .await;
        Element {
            browser: self,
            id: v[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element {css}"))
                .to_string(),
        }
    }

    /// Types `text` into the field `css` (emptied first).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await;
        e.send_keys(text).await;
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await;
    }

    /// Runs `script` in the page (`arguments` are `args`) and returns its value.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.call("execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Runs an asynchronous script: it ends by calling `arguments[arguments.length - 1]`.
    pub async fn run_async(&self, script: &str, args: Value) -> Value {
        self.call("execute/async", json!({"script": script, "args": args}))
            .await
    }

    /// Waits until the page's text holds `needle`.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` never appeared; the page says:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let b64 = self.get("screenshot").await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("a screenshot"))
            .expect("base64 PNG")
    }

    /// The page printed on A4 (portrait), as Chromium's PDF.
    pub async fn print_a4(&self) -> Vec<u8> {
        use base64::Engine;
        let b64 = self
            .call(
                "print",
                json!({"page": {"width": 21.0, "height": 29.7}, "background": true,
                       "margin": {"top": 1.0, "bottom": 1.0, "left": 1.0, "right": 1.0}}),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("a PDF"))
            .expect("base64 PDF")
    }

    /// axe-core's violations of impact `serious` or `critical` on the current page (WCAG 2.1
    /// A and AA rules), each as `rule: target (summary)`.
    pub async fn serious_violations(&self, axe: &str) -> Vec<String> {
        let present = self.run("return typeof window.axe;", json!([])).await;
        if present != "object" {
            self.run(&format!("{axe}\n;return true;"), json!([])).await;
        }
        let result = self
            .run_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                    .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,
                        nodes: v.nodes.map(n => n.target.join(' ') + ' (' + n.failureSummary + ')')}))))
                    .catch(e => done([{id: 'axe-error', impact: 'critical', nodes: [String(e)]}]));",
                json!([]),
            )
            .await;
        result
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
            .map(|v| format!("{}: {}", v["id"], v["nodes"]))
            .collect()
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    pub async fn click(&self) {
        self.browser
            .call(&format!("element/{}/click", self.id), json!({}))
            .await;
    }

    pub async fn clear(&self) {
        self.browser
            .call(&format!("element/{}/clear", self.id), json!({}))
            .await;
    }

    pub async fn send_keys(&self, text: &str) {
        self.browser
            .call(
                &format!("element/{}/value", self.id),
                json!({ "text": text }),
            )
            .await;
    }

    pub async fn text(&self) -> String {
        self.browser
            .get(&format!("element/{}/text", self.id))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}
