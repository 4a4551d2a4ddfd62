import{h as i}from"./chunk-TBBAGEZ7.js";function t({ws:n,path:s}){return i("section",{children:[i("h1",{children:"Files"}),i("p",{children:[n," ",s]})]})}export{t as Files};
