import Foundation
import TollgateCore
/// The browser side of page protection, served at `/_tollgate/client.js` (about 1.8 KB, no
/// dependencies). It fetches a page token when the page loads, waits out its minimum age, sends it
/// with every call, solves proof-of-work challenges in a Web Worker, retries a 403 at most twice,
/// and fetches a new token when the old one is used up or expired. The page calls `tollgate.fetch(url, options)`.
enum BrowserSnippet {
    static func source(tokenPath: String) -> String {
        """
        (()=>{"use strict";const P=\(JSONValue.quoted(tokenPath));let t=null,ready=0,p=null;
        function load(){return p||(p=fetch(P,{credentials:"same-origin",cache:"no-store"}).then(r=>{if(!r.ok)throw Error("token "+r.status);return r.json()}).then(j=>{t=j.token;ready=Date.now()+j.min_age_ms;p=null;return t},e=>{p=null;throw e}))}
        async function token(){if(!t)await load();const w=ready-Date.now();if(w>0)await new Promise(r=>setTimeout(r,w));return t}
        const W="onmessage=async e=>{const c=e.data,n=new TextEncoder();for(let i=0;i<=c.maxnumber;i++){const h=new Uint8Array(await crypto.subtle.digest('SHA-256',n.encode(c.salt+i)));let x='';for(const b of h)x+=(b<16?'0':'')+b.toString(16);if(x===c.challenge){postMessage(i);return}}postMessage(-1)}";
        function solve(c){return new Promise((ok,no)=>{const u=URL.createObjectURL(new Blob([W],{type:"text/javascript"})),w=new Worker(u);w.onmessage=e=>{w.terminate();URL.revokeObjectURL(u);e.data<0?no(Error("unsolvable")):ok(e.data)};w.onerror=e=>{w.terminate();no(e)};w.postMessage(c)})}
        async function tfetch(url,o={}){const h=new Headers(o.headers||{});h.set("X-Tollgate-Token",await token());o={...o,headers:h,credentials:"same-origin"};let r=await fetch(url,o);
        for(let n=0;n<2&&r.status===403;n++){const b=await r.clone().json().catch(()=>({}));
        if(b.challenge){const c=b.challenge,s=Date.now(),x=await solve(c);h.set("X-Tollgate-Solution",btoa(JSON.stringify({algorithm:c.algorithm,challenge:c.challenge,number:x,salt:c.salt,signature:c.signature,took:Date.now()-s})))}
        else if(b.reason==="token-expired"||b.reason==="token-used-up"||b.reason==="token-invalid"){t=null;h.set("X-Tollgate-Token",await token())}
        else if(b.reason==="token-too-young"){h.set("X-Tollgate-Token",await token())}else break;
        r=await fetch(url,o)}return r}
        window.tollgate={fetch:tfetch,token};load().catch(()=>{})})();
        """
    }
}
